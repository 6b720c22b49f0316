package marathon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultRequestTimeout   = 10 * time.Second
	DefaultMaxResponseBytes = 256 << 20
	maxRedirects            = 10
)

// Config configures a Client.
type Config struct {
	// URLs are the Marathon base URLs to use, in order of preference:
	// "http://m1:8080", or "https://cluster/service/marathon" through DC/OS
	// Admin Router. A URL may carry Basic credentials
	// ("http://user:pass@m1:8080"), which then apply to that URL only.
	URLs []string
	// Username and Password are Basic credentials (--http_credentials) for
	// URLs that carry none.
	Username string
	Password string
	// Token is a DC/OS authentication token, sent as
	// "Authorization: token=<Token>".
	Token string
	// TokenSource, if set, is asked for the token before every request
	// and every stream (re)connect, so it can refresh an expiring token.
	// It takes precedence over Token.
	TokenSource func(ctx context.Context) (string, error)
	// RequestTimeout bounds each REST attempt (one URL, redirects and
	// reading the body included). The event stream has no whole-request
	// timeout (§4.6); it uses a read-idle watchdog instead. Default 10 s.
	RequestTimeout time.Duration
	// MaxResponseBytes bounds a REST response body. Default 256 MiB.
	MaxResponseBytes int64
	// HTTPClient supplies the transport (TLS settings, proxies). The
	// client follows redirects itself and applies its own timeouts, so
	// its CheckRedirect and Timeout are not used. Default: a client with
	// http.DefaultTransport.
	HTTPClient *http.Client
	// Logger receives debug and warning messages. Default: discard.
	Logger *slog.Logger
	// Clock is the time source. Default: SystemClock.
	Clock Clock
}

// Client talks to a Marathon cluster through a list of base URLs. A request
// goes to the URL that last worked; on a connection failure, a timeout or a
// 5xx it moves on to the next one. Redirects (a standby answers /v2/events
// with a 302 to the leader) are followed by the client itself with the
// credentials re-added. A Client is safe for concurrent use.
type Client struct {
	endpoints   []*endpoint
	current     atomic.Int32
	hc          *http.Client
	token       string
	tokenSource func(ctx context.Context) (string, error)
	timeout     time.Duration
	maxBody     int64
	log         *slog.Logger
	clock       Clock
	leader      atomic.Pointer[string]
}

// endpoint is one base URL with its credentials.
type endpoint struct {
	base     *url.URL // without user info
	display  string   // base.Redacted()
	user     string
	password string
	basic    bool
}

// url returns the URL of path (which starts with "/") under the base URL.
func (e *endpoint) url(path string, query url.Values) *url.URL {
	u := *e.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	u.Fragment = ""
	return &u
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg Config) (*Client, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("marathon client: no URL configured")
	}
	c := &Client{
		token:       cfg.Token,
		tokenSource: cfg.TokenSource,
		timeout:     cfg.RequestTimeout,
		maxBody:     cfg.MaxResponseBytes,
		log:         cfg.Logger,
		clock:       cfg.Clock,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultRequestTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		c.clock = SystemClock{}
	}
	useToken := cfg.Token != "" || cfg.TokenSource != nil
	if useToken && (cfg.Username != "" || cfg.Password != "") {
		return nil, errors.New("marathon client: both a token and Basic credentials configured")
	}
	for _, raw := range cfg.URLs {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("marathon client: bad URL: %w", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("marathon client: URL %s: scheme must be http or https", u.Redacted())
		}
		if u.Host == "" {
			return nil, fmt.Errorf("marathon client: URL %s: no host", u.Redacted())
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("marathon client: URL %s: a base URL takes no query or fragment", u.Redacted())
		}
		ep := &endpoint{user: cfg.Username, password: cfg.Password, basic: cfg.Username != "" || cfg.Password != ""}
		if u.User != nil {
			if useToken {
				return nil, fmt.Errorf("marathon client: URL %s: both a token and Basic credentials configured", u.Redacted())
			}
			ep.user = u.User.Username()
			ep.password, _ = u.User.Password()
			ep.basic = true
			u.User = nil
		}
		ep.base = u
		ep.display = u.Redacted()
		c.endpoints = append(c.endpoints, ep)
	}
	hc := &http.Client{Transport: http.DefaultTransport}
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	}
	hc.Timeout = 0
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = hc
	return c, nil
}

// URL returns the base URL (without credentials) requests go to first: the
// last one that answered.
func (c *Client) URL() string { return c.endpoints[c.current.Load()].display }

// LeaderHint returns the last X-Marathon-Leader header seen
// ("http://host:port"), or "".
func (c *Client) LeaderHint() string {
	if p := c.leader.Load(); p != nil {
		return *p
	}
	return ""
}

// authorize sets the Authorization header for ep.
func (c *Client) authorize(ctx context.Context, req *http.Request, ep *endpoint) error {
	switch {
	case c.tokenSource != nil:
		t, err := c.tokenSource(ctx)
		if err != nil {
			return fmt.Errorf("get marathon token: %w", err)
		}
		req.Header.Set("Authorization", "token="+t)
	case c.token != "":
		req.Header.Set("Authorization", "token="+c.token)
	case ep.basic:
		req.SetBasicAuth(ep.user, ep.password)
	}
	return nil
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// send performs one request against ep and follows redirects itself,
// re-adding the credentials on every hop: net/http drops Authorization on
// a redirect to another host (golang/go#65065), and a standby redirects
// /v2/events to the leader (§1.1). A redirect from https to http is
// refused rather than sending credentials in clear. The caller closes the
// returned body.
func (c *Client) send(ctx context.Context, ep *endpoint, method string, u *url.URL, header http.Header) (*http.Response, error) {
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("build request: %w", err)
		}
		for k, vs := range header {
			req.Header[k] = vs
		}
		if err := c.authorize(ctx, req, ep); err != nil {
			return nil, err
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, err
		}
		if l := resp.Header.Get("X-Marathon-Leader"); l != "" {
			c.leader.Store(&l)
		}
		if !isRedirect(resp.StatusCode) {
			return resp, nil
		}
		loc := resp.Header.Get("Location")
		drainClose(resp.Body)
		if loc == "" {
			return nil, fmt.Errorf("%s %s: %d redirect without a Location", method, u.Redacted(), resp.StatusCode)
		}
		if hop+1 >= maxRedirects {
			return nil, fmt.Errorf("%s %s: stopped after %d redirects", method, u.Redacted(), maxRedirects)
		}
		next, err := u.Parse(loc)
		if err != nil {
			return nil, fmt.Errorf("%s %s: bad redirect Location %q: %w", method, u.Redacted(), loc, err)
		}
		if next.Scheme != "http" && next.Scheme != "https" {
			return nil, fmt.Errorf("%s %s: redirect to unsupported URL %s", method, u.Redacted(), next.Redacted())
		}
		if u.Scheme == "https" && next.Scheme == "http" {
			return nil, fmt.Errorf("%s %s: refusing redirect from https to %s", method, u.Redacted(), next.Redacted())
		}
		next.User = nil
		c.log.Debug("marathon: following redirect", "from", u.Redacted(), "to", next.Redacted(), "status", resp.StatusCode)
		u = next
	}
}

// drainClose reads a little of body, so the connection can be reused, and
// closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 64<<10)
	_ = body.Close()
}

// failover runs attempt against the endpoints, starting with the last one
// that worked, until one succeeds or fails with an error that another URL
// would not fix. attempt reports whether its error is worth retrying
// elsewhere (connection failure, timeout, 5xx).
func (c *Client) failover(ctx context.Context, attempt func(ctx context.Context, ep *endpoint) (retry bool, err error)) error {
	n := len(c.endpoints)
	start := int(c.current.Load())
	var errs joinedError
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		ep := c.endpoints[idx]
		retry, err := attempt(ctx, ep)
		if err == nil || !retry {
			if ctx.Err() == nil {
				c.current.Store(int32(idx))
			}
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
		if i+1 < n {
			c.log.Warn("marathon: URL failed, trying the next", "url", ep.display, "err", err)
		}
	}
	if n == 1 {
		return errs[0]
	}
	return fmt.Errorf("all %d marathon URLs failed: %w", n, errs)
}

// call performs a REST request with failover and hands a 2xx body to
// decode (which may be nil). Non-2xx answers are *APIError.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, accept string, decode func([]byte) error) error {
	return c.failover(ctx, func(ctx context.Context, ep *endpoint) (bool, error) {
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		u := ep.url(path, query)
		resp, err := c.send(actx, ep, method, u, http.Header{"Accept": {accept}})
		if err != nil {
			return ctx.Err() == nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
		if err != nil {
			return ctx.Err() == nil, fmt.Errorf("%s %s: read body: %w", method, u.Redacted(), err)
		}
		if int64(len(body)) > c.maxBody {
			return false, fmt.Errorf("%s %s: response larger than %d bytes", method, u.Redacted(), c.maxBody)
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return resp.StatusCode >= 500, newAPIError(method, resp.Request.URL.Redacted(), resp.StatusCode, body)
		}
		if decode == nil || method == http.MethodHead {
			return false, nil
		}
		if err := decode(body); err != nil {
			return false, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
		}
		return false, nil
	})
}

func (c *Client) getJSON(ctx context.Context, path string, query url.Values, decode func([]byte) error) error {
	return c.call(ctx, http.MethodGet, path, query, "application/json", decode)
}

// Ping checks that Marathon answers GET /ping.
func (c *Client) Ping(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, "/ping", nil, "text/plain", nil)
}

// Leader returns the leader's host:port (GET /v2/leader). When Marathon
// has no leader the error wraps ErrNoLeader and the *APIError.
func (c *Client) Leader(ctx context.Context) (string, error) {
	var l Leader
	err := c.getJSON(ctx, "/v2/leader", nil, func(b []byte) error { return decodeJSON("leader", b, &l) })
	if err != nil {
		if IsNotFound(err) {
			return "", fmt.Errorf("%w: %w", ErrNoLeader, err)
		}
		return "", err
	}
	return l.Leader, nil
}

// Info returns GET /v2/info.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var info *Info
	err := c.getJSON(ctx, "/v2/info", nil, func(b []byte) (err error) {
		info, err = DecodeInfo(b)
		return err
	})
	return info, err
}

// Apps returns every app with its tasks embedded: GET
// /v2/apps?embed=apps.tasks, which also embeds the counts and the
// deployments (§2.4). Pods never appear here.
func (c *Client) Apps(ctx context.Context) ([]App, error) {
	var apps []App
	err := c.getJSON(ctx, "/v2/apps", url.Values{"embed": {"apps.tasks"}}, func(b []byte) (err error) {
		apps, err = DecodeApps(b)
		return err
	})
	return apps, err
}

// App returns one app with its tasks (GET /v2/apps/{id}). A missing app is
// an *APIError with status 404 (IsNotFound).
func (c *Client) App(ctx context.Context, id string) (*App, error) {
	var app *App
	err := c.getJSON(ctx, "/v2/apps"+runSpecPath(id), nil, func(b []byte) (err error) {
		app, err = DecodeAppResponse(b)
		return err
	})
	return app, err
}

// Tasks returns every app task (GET /v2/tasks): pod tasks are not listed.
// These tasks carry servicePorts, unlike the embedded ones.
func (c *Client) Tasks(ctx context.Context) ([]Task, error) {
	var tasks []Task
	err := c.getJSON(ctx, "/v2/tasks", nil, func(b []byte) (err error) {
		tasks, err = DecodeTasks(b)
		return err
	})
	return tasks, err
}

// PodsSupported probes HEAD /v2/pods (§2.7): true on Marathon ≥ 1.4. A 4xx
// answer means no pod support; a 5xx or a connection failure is an error.
func (c *Client) PodsSupported(ctx context.Context) (bool, error) {
	err := c.call(ctx, http.MethodHead, "/v2/pods", nil, "application/json", nil)
	if err == nil {
		return true, nil
	}
	if s := StatusCode(err); s >= 400 && s < 500 {
		return false, nil
	}
	return false, err
}

// Pods returns every pod definition (GET /v2/pods).
func (c *Client) Pods(ctx context.Context) ([]Pod, error) {
	var pods []Pod
	err := c.getJSON(ctx, "/v2/pods", nil, func(b []byte) (err error) {
		pods, err = DecodePods(b)
		return err
	})
	return pods, err
}

// PodsStatus returns the status of every pod (GET /v2/pods/::status).
func (c *Client) PodsStatus(ctx context.Context) ([]PodStatus, error) {
	var ss []PodStatus
	err := c.getJSON(ctx, "/v2/pods/::status", nil, func(b []byte) (err error) {
		ss, err = DecodePodStatuses(b)
		return err
	})
	return ss, err
}

// PodStatus returns the status of one pod (GET /v2/pods/{id}::status). A
// missing pod is an *APIError with status 404 (IsNotFound).
func (c *Client) PodStatus(ctx context.Context, id string) (*PodStatus, error) {
	var s *PodStatus
	err := c.getJSON(ctx, "/v2/pods"+runSpecPath(id)+"::status", nil, func(b []byte) (err error) {
		s, err = DecodePodStatus(b)
		return err
	})
	return s, err
}

// runSpecPath turns a run-spec id ("/grp/app" or "grp/app") into a path
// suffix "/grp/app".
func runSpecPath(id string) string {
	return "/" + strings.Trim(id, "/")
}
