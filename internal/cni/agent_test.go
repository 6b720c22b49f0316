package cni

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// readResponse against the answer shapes an HTTP/1.1 server may send.
func TestReadResponse(t *testing.T) {
	tests := []struct {
		name, raw  string
		code       int
		reason     string
		body       string
		wantErr    error
		errContain string
	}{
		{name: "content length", raw: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"port\":1}\n", code: 200, reason: "OK", body: "{\"port\":1}\n"},
		{name: "no content", raw: "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n", code: 204, reason: "No Content"},
		{name: "chunked with trailer", raw: "HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n", code: 409, reason: "Conflict", body: "hello world"},
		{name: "until close", raw: "HTTP/1.0 500 Internal Server Error\r\n\r\nboom", code: 500, reason: "Internal Server Error", body: "boom"},
		{name: "header continuation", raw: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", code: 200, reason: "OK", body: "{}"},
		{name: "body cut short", raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", wantErr: io.ErrUnexpectedEOF},
		{name: "chunk cut short", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe", wantErr: io.ErrUnexpectedEOF},
		{name: "closed before an answer", raw: "", wantErr: io.EOF},
		{name: "headers cut short", raw: "HTTP/1.1 200 OK\r\nContent-", errContain: "headers"},
		{name: "not http", raw: "SSH-2.0-OpenSSH\r\n\r\n", errContain: "malformed"},
		{name: "bad chunk size", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", errContain: "bad chunk size"},
		{name: "gzip", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", errContain: "unsupported transfer encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, body, err := readResponse(strings.NewReader(tt.raw))
			switch {
			case tt.wantErr != nil || tt.errContain != "":
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errContain) {
					t.Fatalf("err = %v, want %v %q", err, tt.wantErr, tt.errContain)
				}
			case err != nil:
				t.Fatal(err)
			case code != tt.code || reason != tt.reason || string(body) != tt.body:
				t.Fatalf("got %d %q %q, want %d %q %q", code, reason, body, tt.code, tt.reason, tt.body)
			}
		})
	}
}

// A body larger than maxAgentBody is cut at it, like the plugin always did.
func TestReadResponseBounded(t *testing.T) {
	big := strings.Repeat("x", maxAgentBody+100)
	_, _, body, err := readResponse(strings.NewReader("HTTP/1.1 500 Oops\r\n\r\n" + big))
	if err != nil || len(body) != maxAgentBody {
		t.Fatalf("body of %d bytes, err %v", len(body), err)
	}
}

// A call to an agent that accepts and never answers ends with the
// context: at its deadline as a timeout, at its cancellation at once.
// Missing and refused sockets fail at once with their reason.
func TestAgentClientEndsWithContext(t *testing.T) {
	fa := startFakeAgent(t)
	fa.SetHang(true)
	c := NewAgentClient(fa.socket)
	var ue *UnreachableError

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Attach(ctx, api.AttachRequest{})
	if !errors.As(err, &ue) || !ue.Timeout || ue.Reason != "timed out" {
		t.Fatalf("deadline: %v (%+v)", err, ue)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("deadline of 200ms ended the call after %v", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = c.Attach(ctx, api.AttachRequest{})
	if !errors.As(err, &ue) || ue.Timeout || ue.Reason != "canceled" {
		t.Fatalf("cancel: %v (%+v)", err, ue)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cancellation ended the call after %v", d)
	}

	dir := t.TempDir()
	refused := filepath.Join(dir, "refused.sock")
	if err := os.WriteFile(refused, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.sock"): "socket does not exist",
		refused:                            "connection refused",
	} {
		_, err := NewAgentClient(path).Attach(context.Background(), api.AttachRequest{})
		if !errors.As(err, &ue) || ue.Reason != want || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want %q naming the socket", path, err, want)
		}
	}
}
