package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultHost is where the engine listens unless told otherwise.
	DefaultHost = "unix:///var/run/docker.sock"
	// FallbackAPIVersion is used when the engine's ping names no API
	// version: v1.41 is Docker 20.10's.
	FallbackAPIVersion = "1.41"
	// DefaultTimeout bounds every call whose context has no earlier
	// deadline.
	DefaultTimeout = 10 * time.Second

	maxBody = 8 << 20
)

// APIError is an error answer of the engine: its HTTP status and message.
// A 404 matches ErrNotFound.
type APIError struct {
	Method, Path string // the request, without the version prefix
	StatusCode   int
	Message      string // the engine's "message"
}

func (e *APIError) Error() string {
	return fmt.Sprintf("docker engine: %s %s: %d %s: %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Is makes errors.Is(err, ErrNotFound) hold for a 404.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// IsConflict reports whether err is the engine's 409 Conflict (such as
// "network with name dcos already exists").
func IsConflict(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusConflict
}

// Client is a Docker Engine API client over a unix socket. It is safe for
// concurrent use. The API version is negotiated by the first call (or by
// Ping): the engine's API-Version header, or FallbackAPIVersion.
type Client struct {
	host    string // unix:///path
	timeout time.Duration
	http    *http.Client

	mu      sync.Mutex
	version string // negotiated, without "v"; "" until a ping succeeded
}

// NewClient returns a client for host ("unix:///path"; "" means
// DefaultHost). Every call is bounded by timeout (0 means DefaultTimeout)
// unless its context ends earlier. NewClient does not connect.
func NewClient(host string, timeout time.Duration) (*Client, error) {
	if host == "" {
		host = DefaultHost
	}
	socket, ok := strings.CutPrefix(host, "unix://")
	if !ok || socket == "" || !strings.HasPrefix(socket, "/") {
		return nil, fmt.Errorf("docker host %q: want unix:///absolute/path", host)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:        4,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		TLSHandshakeTimeout: time.Second,
	}
	return &Client{host: host, timeout: timeout, http: &http.Client{Transport: tr}}, nil
}

// Host returns the unix:// URL the client talks to.
func (c *Client) Host() string { return c.host }

// APIVersion returns the negotiated API version ("" before the first
// successful call).
func (c *Client) APIVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// unavailable wraps a transport failure. When the caller's own context
// ended, that is the error: the engine is not to blame.
func (c *Client) unavailable(parent context.Context, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("docker engine %s: %w", c.host, perr)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, c.host, err)
}

// Ping checks that the engine answers GET /_ping and (re)negotiates the API
// version. A dead socket, a timeout or a server error wraps ErrUnavailable.
func (c *Client) Ping(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unavailable(parent, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return c.unavailable(parent, apiError(http.MethodGet, "/_ping", resp.StatusCode, body))
	}
	v := strings.TrimPrefix(resp.Header.Get("API-Version"), "v")
	if !validVersion(v) {
		v = FallbackAPIVersion
	}
	c.mu.Lock()
	c.version = v
	c.mu.Unlock()
	return nil
}

// validVersion accepts "1.41"-style versions.
func validVersion(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	if !ok || major == "" || minor == "" || len(v) > 8 {
		return false
	}
	for _, r := range major + minor {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func (c *Client) apiVersion(ctx context.Context) (string, error) {
	if v := c.APIVersion(); v != "" {
		return v, nil
	}
	if err := c.Ping(ctx); err != nil {
		return "", err
	}
	return c.APIVersion(), nil
}

// do sends a versioned request; in (if not nil) is sent as JSON, and a 2xx
// answer is decoded into out (if not nil). Error answers become *APIError,
// transport failures wrap ErrUnavailable.
func (c *Client) do(parent context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	v, err := c.apiVersion(ctx)
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://docker/v"+v+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unavailable(parent, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return c.unavailable(parent, fmt.Errorf("read answer to %s %s: %w", method, path, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiError(method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("docker engine: %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func apiError(method, path string, status int, body []byte) error {
	var m struct {
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &m) == nil && m.Message != "" {
		msg = m.Message
	}
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	return &APIError{Method: method, Path: path, StatusCode: status, Message: msg}
}

// NetworkInspect returns the network named name (or with that full ID). The
// engine also matches ID prefixes; a network found only that way counts as
// not found, so that a name never resolves to another network.
func (c *Client) NetworkInspect(ctx context.Context, name string) (Network, error) {
	if name == "" {
		return Network{}, errors.New("docker network inspect: empty name")
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/networks/"+url.PathEscape(name), nil, &raw); err != nil {
		return Network{}, err
	}
	n, err := DecodeNetwork(raw)
	if err != nil {
		return Network{}, fmt.Errorf("docker network %s: %w", name, err)
	}
	if n.Name != name && n.ID != name {
		return Network{}, fmt.Errorf("docker network %s: %w (%q matched network %s by ID prefix)", name, ErrNotFound, name, n.Name)
	}
	return n, nil
}

// createRequest is the body of POST /networks/create.
type createRequest struct {
	Name           string
	CheckDuplicate bool // ignored by API >= 1.44, which always checks
	Driver         string
	EnableIPv6     bool
	IPAM           ipamJSON
	Options        map[string]string
	Labels         map[string]string `json:",omitempty"`
}

type ipamJSON struct {
	Driver string       `json:",omitempty"`
	Config []ipamConfig `json:",omitempty"`
}

type ipamConfig struct {
	Subnet  string `json:",omitempty"`
	Gateway string `json:",omitempty"`
}

// createBody builds the engine's create request for a spec.
func createBody(spec NetworkSpec) createRequest {
	r := createRequest{
		Name: spec.Name, CheckDuplicate: true, Driver: "bridge",
		EnableIPv6: spec.Subnet6.IsValid(),
		IPAM:       ipamJSON{Driver: "default"},
		Options:    spec.Options(), Labels: spec.Labels,
	}
	add := func(p netip.Prefix, gw netip.Addr) {
		if !p.IsValid() {
			return
		}
		c := ipamConfig{Subnet: p.String()}
		if gw.IsValid() {
			c.Gateway = gw.String()
		}
		r.IPAM.Config = append(r.IPAM.Config, c)
	}
	add(spec.Subnet, spec.Gateway)
	add(spec.Subnet6, spec.Gateway6)
	return r
}

// NetworkCreate creates a bridge network as the spec says and returns its
// ID. An existing name is a 409 *APIError (see IsConflict).
func (c *Client) NetworkCreate(ctx context.Context, spec NetworkSpec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", err
	}
	var out struct {
		ID      string `json:"Id"`
		Warning string
	}
	if err := c.do(ctx, http.MethodPost, "/networks/create", createBody(spec), &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", fmt.Errorf("docker engine: create network %s: no ID in the answer", spec.Name)
	}
	return out.ID, nil
}

// NetworkRemove removes the network named name; a missing one is fine. A
// network with containers attached is refused by the engine (403).
func (c *Client) NetworkRemove(ctx context.Context, name string) error {
	n, err := c.NetworkInspect(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	err = c.do(ctx, http.MethodDelete, "/networks/"+url.PathEscape(n.ID), nil, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// networkJSON is the part of the engine's network JSON Weft reads.
type networkJSON struct {
	Name       string
	ID         string `json:"Id"`
	Driver     string
	EnableIPv6 bool
	IPAM       struct {
		Config []ipamConfig
	}
	Options map[string]string
	Labels  map[string]string
}

// DecodeNetwork decodes the engine's answer to GET /networks/{id}.
func DecodeNetwork(data []byte) (Network, error) {
	var j networkJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return Network{}, fmt.Errorf("decode network: %w", err)
	}
	if j.Name == "" && j.ID == "" {
		return Network{}, errors.New("decode network: no name and no id")
	}
	n := Network{ID: j.ID, Name: j.Name, Driver: j.Driver, EnableIPv6: j.EnableIPv6, Options: j.Options, Labels: j.Labels}
	for _, c := range j.IPAM.Config {
		if c.Subnet == "" {
			continue
		}
		p, err := netip.ParsePrefix(c.Subnet)
		if err != nil {
			return Network{}, fmt.Errorf("decode network %s: subnet: %w", j.Name, err)
		}
		n.Subnets = append(n.Subnets, p.Masked())
	}
	if n.Options == nil {
		n.Options = map[string]string{}
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	return n, nil
}

var _ Engine = (*Client)(nil)
