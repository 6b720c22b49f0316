package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
)

// Defaults for EmbedConfig.
const (
	DefaultEmbedClientURL    = "http://127.0.0.1:2379"
	DefaultEmbedStartTimeout = 60 * time.Second
	DefaultEmbedLogLevel     = "error"
	defaultEmbedName         = "weft"
	embedDialTimeout         = 5 * time.Second
	// freePortAttempts bounds retries when a port picked as free was taken
	// by someone else before etcd bound it.
	freePortAttempts = 5
)

// EmbedConfig configures a single-node embedded etcd server.
type EmbedConfig struct {
	// DataDir holds the server's data (required).
	DataDir string
	// Name is the member name; default "weft".
	Name string
	// ClientURL is where the server listens for clients; default
	// DefaultEmbedClientURL. Port 0 picks a free port.
	ClientURL string
	// StartTimeout bounds the wait for the server to become ready; default
	// DefaultEmbedStartTimeout.
	StartTimeout time.Duration
	// LogLevel is the zap level of the server's logs (debug, info, warn,
	// error); default "error".
	LogLevel string
	// AutoCompactRetention, when > 0, enables revision-mode auto compaction
	// keeping this many revisions.
	AutoCompactRetention int64
	// UnsafeNoFsync disables fsync; for tests only.
	UnsafeNoFsync bool
}

// Embedded is a running single-node embedded etcd server.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	closeOnce sync.Once
}

// StartEmbedded starts a single-node etcd server and waits until it is ready,
// cfg.StartTimeout passes, or ctx is done. Peers listen on a free loopback
// port.
func StartEmbedded(ctx context.Context, cfg EmbedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("start embedded etcd: no data dir")
	}
	if cfg.ClientURL == "" {
		cfg.ClientURL = DefaultEmbedClientURL
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultEmbedStartTimeout
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = DefaultEmbedLogLevel
	}
	if cfg.Name == "" {
		cfg.Name = defaultEmbedName
	}
	clientURL, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: client url %q: %w", cfg.ClientURL, err)
	}
	host, port, err := net.SplitHostPort(clientURL.Host)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: client url %q: %w", cfg.ClientURL, err)
	}
	pickClientPort := port == "0"

	var lastErr error
	for range freePortAttempts {
		e, err := startOnce(ctx, cfg, clientURL, host, pickClientPort)
		if err == nil {
			return e, nil
		}
		lastErr = err
		// Ports are picked by binding :0 and releasing, so another process
		// may grab one before etcd binds it; retry with new ports then.
		if !isAddrInUse(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func startOnce(ctx context.Context, cfg EmbedConfig, clientURL *url.URL, host string, pickClientPort bool) (*Embedded, error) {
	curl := *clientURL
	if pickClientPort {
		p, err := freePort(host)
		if err != nil {
			return nil, fmt.Errorf("start embedded etcd: %w", err)
		}
		curl.Host = net.JoinHostPort(host, strconv.Itoa(p))
	}
	peerPort, err := freePort("127.0.0.1")
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	purl := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}

	// Clients and advertisements need a dialable address, not a wildcard.
	aurl := curl
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		_, p, _ := net.SplitHostPort(curl.Host)
		aurl.Host = net.JoinHostPort("127.0.0.1", p)
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{curl}
	ec.AdvertiseClientUrls = []url.URL{aurl}
	ec.ListenPeerUrls = []url.URL{purl}
	ec.AdvertisePeerUrls = []url.URL{purl}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.Logger = "zap"
	ec.LogLevel = cfg.LogLevel
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	if cfg.AutoCompactRetention > 0 {
		ec.AutoCompactionMode = embed.CompactorModeRevision
		ec.AutoCompactionRetention = strconv.FormatInt(cfg.AutoCompactRetention, 10)
	}

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.DataDir, err)
	}
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("start embedded etcd in %s: server failed before ready: %w", cfg.DataDir, err)
	case <-timer.C:
		e.Close()
		return nil, fmt.Errorf("start embedded etcd in %s: not ready after %v", cfg.DataDir, cfg.StartTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.DataDir, ctx.Err())
	}
	return &Embedded{etcd: e, endpoints: []string{aurl.String()}}, nil
}

// isAddrInUse reports whether err is a failure to bind a port in use. etcd
// does not always wrap the listener error, so the message is checked too.
func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// freePort returns a TCP port on host that was free a moment ago.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick free port on %q: %w", host, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pick free port on %q: %w", host, err)
	}
	return port, nil
}

// Endpoints returns the client URLs of the server.
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Client dials a new client to the server. The caller closes it.
func (e *Embedded) Client(ctx context.Context) (*Etcd, error) {
	return DialEtcd(ctx, e.Endpoints(), embedDialTimeout)
}

// LocalClient returns a client that calls the server in this process
// directly, without gRPC or a socket: what the controller uses, since a
// request through the client URL costs the encoding, the HTTP/2 framing
// and the loopback traffic on both sides. The caller closes it (before
// Close).
func (e *Embedded) LocalClient() *Etcd {
	return NewEtcd(v3client.New(e.etcd.Server))
}

// Close stops the server and waits for it to exit. It is idempotent.
func (e *Embedded) Close() {
	e.closeOnce.Do(func() {
		e.etcd.Close()
		// Drain until the server closes its error channel, so that no
		// goroutine is left running after Close.
		for range e.etcd.Err() {
		}
	})
}
