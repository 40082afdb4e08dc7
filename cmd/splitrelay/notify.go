package main

import (
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// sdNotify sends a state to systemd's notification socket ($NOTIFY_SOCKET)
// for Type=notify units: READY=1 once the milter socket is listening,
// RELOADING=1 … READY=1 around a SIGHUP reload, STOPPING=1 when draining.
// Without $NOTIFY_SOCKET (not under systemd) it does nothing. See
// sd_notify(3); the protocol is one datagram per state, which is all the
// library would do.
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" || !(strings.HasPrefix(path, "/") || strings.HasPrefix(path, "@")) {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}

// sdReloading is RELOADING=1 with the monotonic timestamp systemd ≥ 253
// asks for.
func sdReloading() string {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	usec := ts.Sec*1e6 + ts.Nsec/1e3
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10)
}
