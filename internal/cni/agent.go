package cni

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// Agent API paths (see internal/api/agent.go).
const (
	pathAttach = "/v1/attach"
	pathDetach = "/v1/detach"
	pathCheck  = "/v1/check"
	pathGC     = "/v1/gc"
	pathStatus = "/v1/status"
)

// maxAgentBody bounds what the plugin reads from the agent.
const maxAgentBody = 1 << 20

// maxAgentHeader bounds the status line and headers of an answer.
const maxAgentHeader = 64 << 10

// AgentClient calls the local Weft agent's API over its unix socket. It
// makes one attempt per call and never retries: a missing socket or a
// refused connection fails at once, a hung agent fails when the context
// ends.
//
// Each call is one HTTP/1.1 request on its own connection (Connection:
// close), written and read here rather than with net/http: the plugin is
// started for every container, and linking net/http (with crypto/tls and
// the rest) costs every start more than the whole request does.
type AgentClient struct {
	socket string
}

// NewAgentClient returns a client for the agent listening on socket.
func NewAgentClient(socket string) *AgentClient {
	return &AgentClient{socket: socket}
}

// Socket returns the agent socket path.
func (c *AgentClient) Socket() string { return c.socket }

// Attach asks the agent to attach a container (POST /v1/attach).
func (c *AgentClient) Attach(ctx context.Context, req api.AttachRequest) (api.AttachResult, error) {
	var res api.AttachResult
	err := c.call(ctx, "POST", pathAttach, req, &res)
	return res, err
}

// Detach asks the agent to detach a container (POST /v1/detach).
func (c *AgentClient) Detach(ctx context.Context, req api.DetachRequest) error {
	return c.call(ctx, "POST", pathDetach, req, nil)
}

// Check asks the agent whether an attachment is as it should be (POST
// /v1/check).
func (c *AgentClient) Check(ctx context.Context, req api.DetachRequest) error {
	return c.call(ctx, "POST", pathCheck, req, nil)
}

// GC asks the agent to detach every attachment of a CNI network that is not
// in req.Valid (POST /v1/gc).
func (c *AgentClient) GC(ctx context.Context, req api.GCRequest) error {
	return c.call(ctx, "POST", pathGC, req, nil)
}

// Status returns the agent's readiness (GET /v1/status).
func (c *AgentClient) Status(ctx context.Context) (api.AgentStatus, error) {
	var st api.AgentStatus
	err := c.call(ctx, "GET", pathStatus, nil, &st)
	return st, err
}

// UnreachableError is a call that got no answer from the agent: the socket
// is missing, refuses connections, is not accessible, or the agent did not
// answer before the deadline.
type UnreachableError struct {
	Socket string
	// Reason is a short description: "socket does not exist",
	// "connection refused", "permission denied", "timed out", ...
	Reason string
	// Timeout is set when the deadline passed.
	Timeout bool
	Err     error
}

// Error names the reason and the underlying error, which names the socket.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%s: %v", e.Reason, e.Err)
}

// Unwrap returns the transport error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// call makes one request. Answers outside 2xx become *api.Error (with the
// agent's {"error","field"} when it sent one); transport failures become
// *UnreachableError.
func (c *AgentClient) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = b
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return c.unreachable(ctx, fmt.Errorf("%s %s: %w", method, path, err))
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Cancellation interrupts a blocked write or read at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var req bytes.Buffer
	req.Grow(256 + len(body))
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: weft-agent\r\nUser-Agent: weft-cni\r\nAccept: application/json\r\nConnection: close\r\n", method, path)
	if in != nil {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return c.unreachable(ctx, fmt.Errorf("%s %s: %w", method, path, err))
	}

	code, reason, b, err := readResponse(conn)
	if err != nil {
		return c.unreachable(ctx, fmt.Errorf("%s %s: read answer: %w", method, path, err))
	}
	if code < 200 || code > 299 {
		return responseError(code, reason, b)
	}
	if out == nil || code == 204 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// readResponse reads an HTTP/1.x answer: its status code and reason, and
// its body (at most maxAgentBody bytes of it), whether sized by
// Content-Length, chunked, or ended by the closing connection.
func readResponse(conn io.Reader) (code int, reason string, body []byte, err error) {
	lr := &io.LimitedReader{R: conn, N: maxAgentHeader}
	br := bufio.NewReader(lr)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		return 0, "", nil, err
	}
	proto, status, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") {
		return 0, "", nil, fmt.Errorf("malformed status line %q", line)
	}
	codeText, reason, _ := strings.Cut(status, " ")
	code, err = strconv.Atoi(codeText)
	if err != nil || code < 200 || code > 999 {
		return 0, "", nil, fmt.Errorf("malformed or unexpected status line %q", line)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return 0, "", nil, fmt.Errorf("headers: %w", err)
	}
	if code == 204 || code == 304 {
		return code, reason, nil, nil
	}
	lr.N = maxAgentBody + 1<<10 // the body, with room for chunk framing
	var r io.Reader = br
	size := int64(-1)
	switch te := strings.ToLower(h.Get("Transfer-Encoding")); {
	case te == "chunked":
		r = &chunkedReader{r: br}
	case te != "" && te != "identity":
		return 0, "", nil, fmt.Errorf("unsupported transfer encoding %q", te)
	case h.Get("Content-Length") != "":
		size, err = strconv.ParseInt(strings.TrimSpace(h.Get("Content-Length")), 10, 64)
		if err != nil || size < 0 {
			return 0, "", nil, fmt.Errorf("bad content length %q", h.Get("Content-Length"))
		}
		r = io.LimitReader(br, size)
	}
	// Without a length or chunks, the body ends when the agent closes the
	// connection (the request said Connection: close).
	body, err = io.ReadAll(io.LimitReader(r, maxAgentBody))
	if err == nil && size >= 0 && int64(len(body)) < min(size, maxAgentBody) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return 0, "", nil, fmt.Errorf("body: %w", noEOF(err))
	}
	return code, reason, body, nil
}

// noEOF reports a body cut short as io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// chunkedReader decodes a chunked body (RFC 9112 section 7.1); trailers
// are read and dropped.
type chunkedReader struct {
	r    *bufio.Reader
	left int64 // bytes left in the current chunk
	done bool
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, noEOF(err)
		}
		size, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad chunk size %q", strings.TrimSpace(line))
		}
		if n == 0 {
			for { // trailers, up to the empty line
				l, err := c.r.ReadString('\n')
				if err != nil {
					return 0, noEOF(err)
				}
				if strings.TrimSpace(l) == "" {
					break
				}
			}
			c.done = true
			continue
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left == 0 && err == nil {
		// The chunk's closing CRLF.
		if _, err := c.r.Discard(2); err != nil {
			return n, noEOF(err)
		}
	}
	return n, noEOF(err)
}

// unreachable classifies a transport error.
func (c *AgentClient) unreachable(ctx context.Context, err error) error {
	e := &UnreachableError{Socket: c.socket, Reason: "request failed", Err: err}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		e.Reason, e.Timeout = "timed out", true
	case errors.Is(ctx.Err(), context.Canceled):
		e.Reason = "canceled"
	case errors.Is(err, os.ErrDeadlineExceeded):
		e.Reason, e.Timeout = "timed out", true
	case errors.Is(err, syscall.ENOENT):
		e.Reason = "socket does not exist"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Reason = "connection refused"
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		e.Reason = "permission denied"
	case errors.Is(err, syscall.ENOTSOCK):
		e.Reason = "not a socket"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		e.Reason = "connection closed before an answer"
	}
	return e
}

// responseError builds an *api.Error from an answer outside 2xx.
func responseError(code int, reason string, b []byte) error {
	var body struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if err := json.Unmarshal(b, &body); err == nil && body.Error != "" {
		return api.ErrorFromStatus(code, body.Error, body.Field)
	}
	msg := "HTTP " + strconv.Itoa(code)
	if reason != "" {
		msg += " " + reason
	}
	if text := strings.Join(strings.Fields(string(b)), " "); text != "" {
		const limit = 200
		if len(text) > limit {
			text = text[:limit] + "..."
		}
		msg += ": " + text
	}
	return api.ErrorFromStatus(code, msg, "")
}
