//go:build !linux

package milter

import "net"

func wrapListener(ln net.Listener) net.Listener { return ln }
