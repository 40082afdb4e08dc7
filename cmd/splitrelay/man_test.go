package main

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/splitrelay/splitrelay/rules"
)

// The man pages are written by hand; these tests keep them from drifting:
// every configuration key (rules.Keys) must be documented under its table
// in splitrelay.toml(5) and nothing else, and every command with each of
// its flags in splitrelay(8).

// roffText drops font escapes and turns roff's escaped characters into
// plain ones: "\fB\-\-from\fR" -> "--from".
func roffText(s string) string {
	s = regexp.MustCompile(`\\f[BIRP]`).ReplaceAllString(s, "")
	s = strings.NewReplacer(`\-`, "-", `\(dq`, `"`, `\(en`, "-", `\e`, `\`).Replace(s)
	return s
}

// manKeys lists the keys splitrelay.toml(5) documents, as rules.Keys
// spells them: under a ".SS [table]" heading (or "[[table]] and
// [[other]]"), each ".TP" followed by ".B key" or ".I NAME" (a name the
// user chooses, "*").
func manKeys(t *testing.T, page string) []string {
	t.Helper()
	var keys, tables []string
	lines := strings.Split(page, "\n")
	header := regexp.MustCompile(`\[+([a-z_.A-Z]+)\]+`)
	placeholder := regexp.MustCompile(`^[A-Z]+$`)
	star := func(path string) string {
		parts := strings.Split(path, ".")
		for i, p := range parts {
			if placeholder.MatchString(p) {
				parts[i] = "*"
			}
		}
		return strings.Join(parts, ".")
	}
	for i, line := range lines {
		switch {
		case strings.HasPrefix(line, ".SH"):
			tables = nil
		case strings.HasPrefix(line, ".SS"):
			tables = nil
			for _, m := range header.FindAllStringSubmatch(roffText(line), -1) {
				tables = append(tables, star(m[1]))
			}
		case line == ".TP" && i+1 < len(lines) && len(tables) > 0:
			f := strings.Fields(roffText(lines[i+1]))
			if len(f) < 2 || (f[0] != ".B" && f[0] != ".I" && f[0] != ".BR") {
				t.Errorf("line %d: .TP without a key: %q", i+2, lines[i+1])
				continue
			}
			for _, tb := range tables {
				keys = append(keys, star(tb+"."+f[1]))
			}
		}
	}
	return keys
}

func TestManConfigKeys(t *testing.T) {
	page, err := os.ReadFile("../../packaging/man/splitrelay.toml.5")
	if err != nil {
		t.Fatal(err)
	}
	documented := manKeys(t, string(page))
	accepted := rules.Keys()
	// A table of tables (routes.*.primary) is documented both as a key of
	// its parent and as a table of its own.
	isTable := func(k string) bool {
		for _, a := range accepted {
			if strings.HasPrefix(a, k+".") {
				return true
			}
		}
		return false
	}
	for _, k := range accepted {
		if !slices.Contains(documented, k) {
			t.Errorf("key %s is accepted by rules but not documented in packaging/man/splitrelay.toml.5", k)
		}
	}
	for _, k := range documented {
		if !slices.Contains(accepted, k) && !isTable(k) {
			t.Errorf("splitrelay.toml.5 documents %s, which rules does not accept", k)
		}
	}
}

func TestManCommands(t *testing.T) {
	data, err := os.ReadFile("../../packaging/man/splitrelay.8")
	if err != nil {
		t.Fatal(err)
	}
	// Sections by command: ".SS name" up to the next heading.
	sections := map[string]string{}
	var cur string
	for _, line := range strings.Split(roffText(string(data)), "\n") {
		switch {
		case strings.HasPrefix(line, ".SS "):
			cur = strings.TrimSpace(strings.TrimPrefix(line, ".SS "))
		case strings.HasPrefix(line, ".SH "):
			cur = ""
		case cur != "":
			sections[cur] += line + "\n"
		}
	}
	flag := regexp.MustCompile(`^\s*(-{1,2}[a-z][a-z-]*)(?:,\s*(--[a-z][a-z-]*))?`)
	for _, name := range commandOrder {
		sec, ok := sections[name]
		if !ok {
			t.Errorf("command %s has no .SS section in packaging/man/splitrelay.8", name)
			continue
		}
		var help bytes.Buffer
		commands[name].run([]string{"-h"}, &help, &help)
		for _, line := range strings.Split(help.String(), "\n") {
			m := flag.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			for _, f := range m[1:] {
				if f == "" {
					continue
				}
				// -config (the flag package's spelling) is --config.
				if !strings.Contains(sec, f) {
					t.Errorf("splitrelay(8), section %s: flag %s is not documented", name, f)
				}
			}
		}
	}
}
