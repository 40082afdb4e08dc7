package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/splitrelay/splitrelay/milter"
)

// The control socket lets `splitrelay reload` ask the running daemon to
// reload and hear its answer (SIGHUP cannot answer): an abstract unix
// socket named after the daemon's PID, "@splitrelay/PID/control", so it
// needs no file system path (the unit's sandbox leaves the daemon only its
// milter socket's directory) and `reload` finds it from systemd's
// $MAINPID. Only root and the daemon's own user may use it (SO_PEERCRED).
//
// Protocol: the client sends "reload\n"; the daemon reloads its
// configuration file exactly as on SIGHUP and answers
//
//	ok ID PATH            the new configuration is in force
//	refused ID PATH       refused; the configuration ID stays in force
//	PROBLEM...            (after refused) one line per problem
//
// then closes the connection.

// controlAddr is the daemon's control socket for pid.
func controlAddr(pid int) *net.UnixAddr {
	return &net.UnixAddr{Name: "@splitrelay/" + strconv.Itoa(pid) + "/control", Net: "unix"}
}

// reloadResult is a reload's outcome as the control socket reports it.
type reloadResult struct {
	ok     bool
	id     string // the configuration in force afterwards
	path   string
	errors []string // why the file was refused
}

// controlServer accepts reload requests and hands them to the daemon's
// main loop, which answers on the request's channel.
type controlServer struct {
	ln   *net.UnixListener
	log  *slog.Logger
	reqs chan chan reloadResult
}

func listenControl(log *slog.Logger) (*controlServer, error) {
	ln, err := net.ListenUnix("unix", controlAddr(os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	c := &controlServer{ln: ln, log: log, reqs: make(chan chan reloadResult)}
	go c.serve()
	return c, nil
}

func (c *controlServer) close() {
	if c != nil {
		c.ln.Close()
	}
}

func (c *controlServer) serve() {
	for {
		conn, err := c.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.log.Error("control socket stopped", milter.KeyErr, err)
			}
			return
		}
		go c.handle(conn)
	}
}

func (c *controlServer) handle(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if uid, err := peerUID(conn); err != nil || (uid != 0 && uid != os.Getuid()) {
		c.log.Warn("control socket: connection refused", milter.KeyUID, uid, milter.KeyErr, err)
		return
	}
	line, err := bufio.NewReader(io.LimitReader(conn, 100)).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "reload" {
		fmt.Fprintf(conn, "error unknown request %q\n", strings.TrimSpace(line))
		return
	}
	reply := make(chan reloadResult, 1)
	c.reqs <- reply
	r := <-reply
	word := "ok"
	if !r.ok {
		word = "refused"
	}
	fmt.Fprintf(conn, "%s %s %s\n", word, r.id, r.path)
	for _, e := range r.errors {
		fmt.Fprintln(conn, e)
	}
}

// peerUID is the user id of the process at the other end of conn.
func peerUID(conn *net.UnixConn) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

// requestReload asks the daemon with pid to reload and returns its answer.
func requestReload(pid int, timeout time.Duration) (reloadResult, error) {
	var r reloadResult
	conn, err := net.DialUnix("unix", nil, controlAddr(pid))
	if err != nil {
		return r, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, "reload\n"); err != nil {
		return r, err
	}
	sc := bufio.NewScanner(conn)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return r, err
		}
		return r, errors.New("no answer")
	}
	f := strings.SplitN(sc.Text(), " ", 3)
	if len(f) != 3 || (f[0] != "ok" && f[0] != "refused") {
		return r, fmt.Errorf("unexpected answer %q", sc.Text())
	}
	r.ok, r.id, r.path = f[0] == "ok", f[1], f[2]
	for sc.Scan() {
		r.errors = append(r.errors, sc.Text())
	}
	return r, sc.Err()
}
