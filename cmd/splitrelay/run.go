package main

import (
	"fmt"
	"io"
)

// cmdRun is `splitrelay run -c FILE`: the daemon. (Being written.)
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "splitrelay run: not implemented yet")
	return 1
}
