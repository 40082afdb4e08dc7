//go:build unix

package postfix

import (
	"fmt"
	"os"
	"syscall"
)

// owner is "uid:gid" of a file.
func owner(st os.FileInfo) string {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", s.Uid, s.Gid)
	}
	return "?"
}
