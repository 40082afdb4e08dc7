package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/splitrelay/splitrelay/milter/postfix"
)

const postfixFlags = `  --format text|postconf
                        text (default): main.cf settings, master.cf entries and map contents;
                        postconf: a sh script of postconf commands that applies them
  --postfix-config-dir DIR
                        the Postfix configuration directory (postconf -c DIR in the script;
                        default map directory DIR/splitrelay)
  --map-dir DIR         write the map files into DIR (created if missing) and refer to them there;
                        without it nothing is written and the maps are named in
                        /etc/postfix/splitrelay (or DIR/splitrelay with --postfix-config-dir)
  --queue-dir DIR       Postfix's queue_directory (default /var/spool/postfix): a milter socket
                        inside it is named relative to it
`

// cmdPostfix is `splitrelay postfix -c FILE [--format text|postconf]
// [--postfix-config-dir DIR] [--map-dir DIR] [--queue-dir DIR]`.
func cmdPostfix(args []string, stdout, stderr io.Writer) int {
	fs, config := newFlags("postfix", "-c FILE [--format text|postconf] [--postfix-config-dir DIR] [--map-dir DIR] [--queue-dir DIR]", postfixFlags, stdout, stderr)
	format := fs.String("format", "text", "")
	configDir := fs.String("postfix-config-dir", "", "")
	mapDir := fs.String("map-dir", "", "")
	queueDir := fs.String("queue-dir", postfix.DefaultQueueDir, "")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *format != "text" && *format != "postconf" {
		return usageError(fs, "--format %q: want text or postconf", *format)
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

	if *mapDir != "" {
		if err := writeMaps(c); err != nil {
			fmt.Fprintf(stderr, "splitrelay postfix: %v\n", err)
			return 1
		}
	}
	if *format == "postconf" {
		err = c.WritePostconf(stdout)
	} else {
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
