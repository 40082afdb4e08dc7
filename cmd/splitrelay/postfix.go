package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfix"
)

const postfixFlags = `  --format text|postconf|diff
                        text (default): main.cf settings, master.cf entries and map contents;
                        postconf: a sh script of postconf commands that applies them (merging
                        into your lists, recording what it adds, backing up main.cf and master.cf);
                        diff: what applying would change in the main.cf and master.cf of
                        --postfix-config-dir (required), nothing applied
  --detach              what removes everything splitrelay added to Postfix (text, postconf
                        or diff), so that main.cf and master.cf are as before attaching
  --postfix-config-dir DIR
                        the Postfix configuration directory (postconf -c DIR in the script;
                        default map directory DIR/splitrelay)
  --map-dir DIR         write the map files into DIR (created if missing) and refer to them there;
                        without it nothing is written and the maps are named in
                        /etc/postfix/splitrelay (or DIR/splitrelay with --postfix-config-dir)
  --queue-dir DIR       Postfix's queue_directory (default /var/spool/postfix): a milter socket
                        inside it is named relative to it
`

// cmdPostfix is `splitrelay postfix -c FILE [--format text|postconf|diff]
// [--detach] [--postfix-config-dir DIR] [--map-dir DIR] [--queue-dir DIR]`.
func cmdPostfix(args []string, stdout, stderr io.Writer) int {
	fs, config := newFlags("postfix", "-c FILE [--format text|postconf|diff] [--detach] [--postfix-config-dir DIR] [--map-dir DIR] [--queue-dir DIR]", postfixFlags, stdout, stderr)
	format := fs.String("format", "text", "")
	detach := fs.Bool("detach", false, "")
	configDir := fs.String("postfix-config-dir", "", "")
	mapDir := fs.String("map-dir", "", "")
	queueDir := fs.String("queue-dir", postfix.DefaultQueueDir, "")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *format != "text" && *format != "postconf" && *format != "diff" {
		return usageError(fs, "--format %q: want text, postconf or diff", *format)
	}
	if *format == "diff" && *configDir == "" {
		return usageError(fs, "--format diff needs --postfix-config-dir: the configuration to compare with")
	}

	rs, err := loadConfig(*config)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	opt := postfix.Options{QueueDir: *queueDir, ConfigDir: *configDir, MapDir: postfix.DefaultMapDir}
	if *configDir != "" {
		opt.MapDir = filepath.Join(*configDir, "splitrelay")
	}
	if *mapDir != "" {
		if opt.MapDir, err = filepath.Abs(*mapDir); err != nil {
			fmt.Fprintf(stderr, "splitrelay postfix: %v\n", err)
			return 1
		}
	}
	if opt.ConfigDir != "" {
		if opt.ConfigDir, err = filepath.Abs(opt.ConfigDir); err != nil {
			fmt.Fprintf(stderr, "splitrelay postfix: %v\n", err)
			return 1
		}
	}
	c, err := postfix.Generate(rs, opt)
	if err != nil {
		fmt.Fprintf(stderr, "splitrelay postfix: %v\n", err)
		return 1
	}

	if *mapDir != "" && !*detach && *format != "diff" {
		if err := writeMaps(c); err != nil {
			fmt.Fprintf(stderr, "splitrelay postfix: %v\n", err)
			return 1
		}
	}
	switch {
	case *format == "diff":
		err = writeDiff(c, *detach, stdout)
	case *detach && *format == "postconf":
		err = c.WriteDetach(stdout)
	case *detach:
		err = c.WriteDetachText(stdout)
	case *format == "postconf":
		err = c.WritePostconf(stdout)
	default:
		if *mapDir != "" {
			fmt.Fprintf(stdout, "# The map files below were written to %s.\n", c.MapDir)
		} else {
			fmt.Fprintf(stdout, "# The map files below were NOT written (no --map-dir): save them in %s.\n", c.MapDir)
		}
		err = c.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "splitrelay postfix: %v\n", err)
		return 1
	}
	return 0
}

// writeDiff runs the postconf (or detach) script on a copy of the main.cf,
// master.cf and record of c.ConfigDir in a temporary directory and writes
// the unified diff of the result: exactly what running the script would
// change, since the same postconf(1) makes the change. Nothing is applied.
func writeDiff(c *postfix.Config, detach bool, stdout io.Writer) error {
	scratch, err := os.MkdirTemp("", "splitrelay-diff-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	before := map[string][]byte{}
	for _, f := range []string{"main.cf", "master.cf"} {
		data, err := os.ReadFile(filepath.Join(c.ConfigDir, f))
		if err != nil {
			return fmt.Errorf("diff: %w", err)
		}
		before[f] = data
		if err := os.WriteFile(filepath.Join(scratch, f), data, 0o644); err != nil {
			return err
		}
		// postconf pauses on a main.cf modified a moment ago
		old := time.Now().Add(-time.Minute)
		_ = os.Chtimes(filepath.Join(scratch, f), old, old)
	}
	cp := *c
	cp.ConfigDir, cp.Scratch, cp.RecordPath = scratch, true, filepath.Join(scratch, postfix.RecordFile)
	if data, err := os.ReadFile(c.Record()); err == nil {
		if err := os.WriteFile(cp.RecordPath, data, 0o644); err != nil {
			return err
		}
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("diff: %w", err)
	}
	var script bytes.Buffer
	if detach {
		err = cp.WriteDetach(&script)
	} else {
		err = cp.WritePostconf(&script)
	}
	if err != nil {
		return err
	}
	sh := exec.Command("sh", "-c", script.String())
	sh.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin", "MAIL_CONFIG="+scratch)
	out, err := sh.CombinedOutput()
	if err != nil {
		return fmt.Errorf("diff: the script failed on a copy of %s: %v\n%s", c.ConfigDir, err, out)
	}
	what := "attaching"
	if detach {
		what = "detaching"
	}
	fmt.Fprintf(stdout, "# What %s splitrelay would change in %s (nothing applied):\n", what, c.ConfigDir)
	for l := range strings.Lines(string(out)) {
		if strings.HasPrefix(l, "# ") && !strings.Contains(l, scratch) {
			fmt.Fprint(stdout, l)
		}
	}
	for _, f := range []string{"main.cf", "master.cf"} {
		after, err := os.ReadFile(filepath.Join(scratch, f))
		if err != nil {
			return err
		}
		name := filepath.Join(c.ConfigDir, f)
		if err := postfix.WriteDiff(stdout, name, name+" ("+what+")", before[f], after); err != nil {
			return err
		}
	}
	return nil
}

// writeMaps writes every map file of c into c.MapDir, each atomically
// (a temporary file renamed over the old one), so that a Postfix process
// starting meanwhile reads the old table or the new one, never half of one.
func writeMaps(c *postfix.Config) error {
	if err := os.MkdirAll(c.MapDir, 0o755); err != nil {
		return fmt.Errorf("write maps: %w", err)
	}
	for _, m := range c.Maps {
		if err := writeFileAtomic(m.Path, []byte(m.Content), 0o644); err != nil {
			return fmt.Errorf("write maps: %w", err)
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
