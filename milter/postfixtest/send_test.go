package postfixtest_test

import (
	"testing"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// A real swaks 20201014 transcript against the private Postfix, trimmed.
const swaksTranscript = `=== Trying 127.0.0.1:40211...
=== Connected to 127.0.0.1.
<-  220 mx.test.example ESMTP Postfix
 -> EHLO client.test
<-  250-mx.test.example
<-  250-PIPELINING
<-  250 CHUNKING
 -> MAIL FROM:<sender@external.test>
<-  250 2.1.0 Ok
 -> RCPT TO:<bob@example.com>
<-  250 2.1.5 Ok
 -> RCPT TO:<x@example.net>
<** 554 5.7.1 <x@example.net>: Relay access denied
 -> DATA
<-  354 End data with <CR><LF>.<CR><LF>
 -> Subject: queued as FAKE
 -> 
 -> .
<-  250 2.0.0 Ok: queued as 9C1B298411F
 -> QUIT
<-  221 2.0.0 Bye
=== Connection closed with remote host.
`

func TestQueueID(t *testing.T) {
	if id, ok := postfixtest.QueueID(swaksTranscript); !ok || id != "9C1B298411F" {
		t.Errorf("QueueID = %q, %v", id, ok)
	}
	if id, ok := postfixtest.QueueID("<** 554 5.7.1 nope\n"); ok {
		t.Errorf("QueueID of a rejected session = %q", id)
	}
}

func TestReply(t *testing.T) {
	for _, tc := range []struct{ cmd, want string }{
		{"rcpt to:<x@example.net>", "554 5.7.1 <x@example.net>: Relay access denied"},
		{"RCPT TO:<bob@", "250 2.1.5 Ok"},
		{"EHLO", "250-mx.test.example\n250-PIPELINING\n250 CHUNKING"},
		{"RCPT TO:<nobody@example.com>", ""},
	} {
		if got := postfixtest.Reply(swaksTranscript, tc.cmd); got != tc.want {
			t.Errorf("Reply(%q) = %q, want %q", tc.cmd, got, tc.want)
		}
	}
}
