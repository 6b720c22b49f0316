package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

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

// AgentClient calls the local Weft agent's API over its unix socket. It
// makes one attempt per call and never retries: a missing socket or a
// refused connection fails at once, a hung agent fails when the context
// ends.
type AgentClient struct {
	socket string
	hc     *http.Client
}

// NewAgentClient returns a client for the agent listening on socket.
func NewAgentClient(socket string) *AgentClient {
	tr := &http.Transport{
		// Never a proxy: the "host" is a unix socket.
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &AgentClient{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket returns the agent socket path.
func (c *AgentClient) Socket() string { return c.socket }

// Attach asks the agent to attach a container (POST /v1/attach).
func (c *AgentClient) Attach(ctx context.Context, req api.AttachRequest) (api.AttachResult, error) {
	var res api.AttachResult
	err := c.call(ctx, http.MethodPost, pathAttach, req, &res)
	return res, err
}

// Detach asks the agent to detach a container (POST /v1/detach).
func (c *AgentClient) Detach(ctx context.Context, req api.DetachRequest) error {
	return c.call(ctx, http.MethodPost, pathDetach, req, nil)
}

// Check asks the agent whether an attachment is as it should be (POST
// /v1/check).
func (c *AgentClient) Check(ctx context.Context, req api.DetachRequest) error {
	return c.call(ctx, http.MethodPost, pathCheck, req, nil)
}

// GC asks the agent to detach every attachment of a CNI network that is not
// in req.Valid (POST /v1/gc).
func (c *AgentClient) GC(ctx context.Context, req api.GCRequest) error {
	return c.call(ctx, http.MethodPost, pathGC, req, nil)
}

// Status returns the agent's readiness (GET /v1/status).
func (c *AgentClient) Status(ctx context.Context) (api.AgentStatus, error) {
	var st api.AgentStatus
	err := c.call(ctx, http.MethodGet, pathStatus, nil, &st)
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
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://weft-agent"+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "weft-cni")

	resp, err := c.hc.Do(req)
	if err != nil {
		// Keep the dial error itself, not url.Error's fake URL.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return c.unreachable(ctx, fmt.Errorf("%s %s: %w", method, path, err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody))
	if err != nil {
		return c.unreachable(ctx, fmt.Errorf("%s %s: read answer: %w", method, path, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp, b)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// unreachable classifies a transport error.
func (c *AgentClient) unreachable(ctx context.Context, err error) error {
	e := &UnreachableError{Socket: c.socket, Reason: "request failed", Err: err}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		e.Reason, e.Timeout = "timed out", true
	case errors.Is(ctx.Err(), context.Canceled):
		e.Reason = "canceled"
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
func responseError(resp *http.Response, b []byte) error {
	var body struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if err := json.Unmarshal(b, &body); err == nil && body.Error != "" {
		return api.ErrorFromStatus(resp.StatusCode, body.Error, body.Field)
	}
	msg := "HTTP " + strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	if text := strings.Join(strings.Fields(string(b)), " "); text != "" {
		const limit = 200
		if len(text) > limit {
			text = text[:limit] + "..."
		}
		msg += ": " + text
	}
	return api.ErrorFromStatus(resp.StatusCode, msg, "")
}
