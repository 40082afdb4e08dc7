// Command splitrelay is a milter for Postfix that delivers each recipient
// of a message to the system it lives on (split delivery), configured by
// one TOML file. See `splitrelay help`.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/splitrelay/splitrelay/rules"
)

// version and commit are set at build time:
//
//	go build -ldflags "-X main.version=1.2.3 -X main.commit=abc1234"
//
// When they are not, versionString falls back to the module and VCS
// information the Go toolchain embeds.
var version, commit string

// command is one subcommand: its function and a line for the overview.
type command struct {
	run      func(args []string, stdout, stderr io.Writer) int
	synopsis string
}

// commands are the subcommands (the public interface: never rename).
// Filled in init, as help refers to the table.
var commands map[string]command

// commandOrder is the order of the overview.
var commandOrder = []string{"run", "reload", "check", "explain", "postfix", "sendmail", "test-route", "limits", "version", "help"}

func init() {
	commands = map[string]command{
		"run":     {cmdRun, "run -c FILE                 run the milter daemon (foreground; SIGHUP reloads, SIGTERM stops)"},
		"reload":  {cmdReload, "reload -c FILE [--pid PID]  have the running daemon reload FILE and report its answer"},
		"check":   {cmdCheck, "check -c FILE               validate a configuration"},
		"explain": {cmdExplain, "explain -c FILE --from ADDR --to ADDR...\n                              show what the rules do with an envelope, without an MTA"},
		"postfix": {cmdPostfix, "postfix -c FILE [--format text|postconf] [--map-dir DIR]\n                              print the Postfix side of a configuration"},
		"version": {cmdVersion, "version                     print the version, commit and Go version"},
		"help":    {cmdHelp, "help [COMMAND]              show this overview or a command's flags"},
	}
	commands["limits"] = command{cmdLimits, "limits -c FILE show [USER] | reset USER\n                              show the relay limit counters, or clear one user's"}
	commands["test-route"] = command{cmdTestRoute, "test-route -c FILE ROUTE [--resolver ADDR]\n                              test a route's DNS and TLS like Google's \"Test TLS connection\""}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs `splitrelay <command> [flags]` and returns the exit code.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "-version", "--version":
		name = "version"
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "splitrelay: unknown command %q%s\n\n", name, didYouMean(name))
		usage(stderr)
		return 2
	}
	return cmd.run(args[1:], stdout, stderr)
}

// didYouMean is "; did you mean CMD?" for the command closest to name, or "".
func didYouMean(name string) string {
	if s := rules.Suggest(name, commandOrder); s != "" {
		return "; did you mean " + s + "?"
	}
	return ""
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: splitrelay <command> [flags]\n\ncommands:\n")
	for _, name := range commandOrder {
		fmt.Fprintf(w, "  %s\n", commands[name].synopsis)
	}
	fmt.Fprintf(w, "\nFILE defaults to %s. Run \"splitrelay help COMMAND\" for a command's flags.\n", defaultConfig)
}

// cmdHelp is `splitrelay help [COMMAND]`.
func cmdHelp(args []string, stdout, stderr io.Writer) int {
	fs := newCommandFlags("help", "[COMMAND]", "", stdout, stderr)
	names, code, ok := fs.parseArgs(args)
	switch {
	case !ok:
		return code
	case len(names) == 0:
		usage(stdout)
		return 0
	case len(names) > 1:
		return usageError(fs, "name one command")
	}
	cmd, ok := commands[names[0]]
	if !ok {
		fmt.Fprintf(stderr, "splitrelay help: unknown command %q%s\n\n", names[0], didYouMean(names[0]))
		usage(stderr)
		return 2
	}
	if names[0] == "help" {
		fs.usage(stdout)
		return 0
	}
	// A command's -h prints its help on stdout and exits 0.
	return cmd.run([]string{"-h"}, stdout, stderr)
}

// cmdVersion is `splitrelay version`.
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newCommandFlags("version", "", "", stdout, stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintln(stdout, versionString())
	return 0
}

// versionString is "splitrelay VERSION (commit COMMIT, GOVERSION)".
func versionString() string {
	v, c := version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		if c == "" {
			var modified bool
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision":
					c = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if len(c) > 12 {
				c = c[:12]
			}
			if c != "" && modified {
				c += "-dirty"
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("splitrelay %s (commit %s, %s)", v, c, runtime.Version())
}
