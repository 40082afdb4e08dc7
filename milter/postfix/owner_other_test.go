//go:build !unix

package postfix

import "os"

// owner is "" where files have no Unix owner (the attach tests need
// postconf, hence Unix, anyway).
func owner(os.FileInfo) string { return "" }
