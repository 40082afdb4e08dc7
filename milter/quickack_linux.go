package milter

import (
	"net"
	"syscall"
)

// quickAckListener re-arms TCP_QUICKACK after every read on accepted TCP
// connections. Postfix writes some milter packets that want no reply
// (HELO, body chunks, and the packet before the next one); with delayed
// ACKs on our side its next small write waits up to 40 ms for our ACK
// (Nagle). POSTFIX.md measured that stall; re-arming once at accept does
// nothing, because Linux leaves quick-ack mode by itself. Unix sockets
// need none of this.
type quickAckListener struct{ net.Listener }

func (l quickAckListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			return &quickAckConn{TCPConn: tc, rc: rc}, nil
		}
	}
	return c, nil
}

type quickAckConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

func (c *quickAckConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	c.rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
	return n, err
}

func wrapListener(ln net.Listener) net.Listener {
	if _, ok := ln.(*net.TCPListener); ok {
		return quickAckListener{ln}
	}
	return ln
}
