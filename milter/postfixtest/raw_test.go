package postfixtest

import (
	"bufio"
	"bytes"
	"testing"
)

func TestWriteDotStuffed(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\nb\n", "a\r\nb\r\n.\r\n"},
		{"a\r\n.b\n..\n", "a\r\n..b\r\n...\r\n.\r\n"},
		{"no final newline", "no final newline\r\n.\r\n"},
		{"", ".\r\n"},
		{".\n", "..\r\n.\r\n"},
	} {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		writeDotStuffed(w, []byte(tc.in))
		w.Flush()
		if b.String() != tc.want {
			t.Errorf("writeDotStuffed(%q) = %q, want %q", tc.in, b.String(), tc.want)
		}
	}
}
