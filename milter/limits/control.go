package limits

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// The control socket: `splitrelay limits show|reset` reaches the running
// daemon's store through it (bbolt's file lock keeps other processes out
// of the embedded file, and the daemon holds the live counters in memory
// anyway). HTTP over a unix socket in [state] dir, mode 0600: only root
// and the daemon's user may use it.

// ControlSocket is the control socket's name in [state] dir.
const ControlSocket = "control.sock"

// Control serves the control socket.
type Control struct {
	srv  *http.Server
	path string
}

// ServeControl listens on dir/control.sock and serves st until Close.
func ServeControl(dir string, st Store) (*Control, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	path := filepath.Join(dir, ControlSocket)
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another daemon is serving it", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		rep, err := st.Show(r.URL.Query().Get("user"))
		reply(w, rep, err)
	})
	mux.HandleFunc("POST /limits/reset", func(w http.ResponseWriter, r *http.Request) {
		had, err := st.Reset(r.URL.Query().Get("user"))
		reply(w, map[string]bool{"had": had}, err)
	})
	c := &Control{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, path: path}
	go c.srv.Serve(ln)
	return c, nil
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	json.NewEncoder(w).Encode(v)
}

// Close stops serving and removes the socket.
func (c *Control) Close() {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.srv.Shutdown(ctx)
	os.Remove(c.path)
}

// ErrNoDaemon is returned by the client when no daemon serves the control
// socket.
var ErrNoDaemon = errors.New("limits: no running daemon on the control socket")

// Client talks to a daemon's control socket.
type Client struct {
	hc *http.Client
}

// Dial returns a client of the control socket in dir, or ErrNoDaemon.
func Dial(dir string) (*Client, error) {
	path := filepath.Join(dir, ControlSocket)
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("control socket %s: %w (run as root or the daemon's user)", path, err)
		}
		return nil, ErrNoDaemon
	}
	c.Close()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
	return &Client{hc: hc}, nil
}

func (c *Client) do(method, path, user string, v any) error {
	req, _ := http.NewRequest(method, "http://splitrelay"+path+"?user="+url.QueryEscape(user), nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("daemon: %s", e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Show asks the daemon for its counters.
func (c *Client) Show(user string) (Report, error) {
	var r Report
	err := c.do("GET", "/limits", user, &r)
	return r, err
}

// Reset asks the daemon to clear a user's counters.
func (c *Client) Reset(user string) (bool, error) {
	var r struct{ Had bool }
	err := c.do("POST", "/limits/reset", user, &r)
	return r.Had, err
}
