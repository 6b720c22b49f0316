//go:build !linux

package overlaydp

import (
	"context"
	"errors"
	"log/slog"
)

// Options configures a Linux data plane (see the Linux build).
type Options struct {
	Netns     string
	Logger    *slog.Logger
	NFTTable  string
	RuleTable int
}

// Linux is the kernel data plane; on this system every method fails.
type Linux struct{}

var _ Interface = (*Linux)(nil)

var errUnsupported = errors.New("overlay data plane: not supported on this system")

// NewLinux fails: the data plane needs Linux.
func NewLinux(Options) (*Linux, error) { return nil, errUnsupported }

// Close does nothing.
func (l *Linux) Close() {}

// Changes is always 0.
func (l *Linux) Changes() int64 { return 0 }

// Sync fails.
func (l *Linux) Sync(context.Context, State) error { return errUnsupported }

// Dump fails.
func (l *Linux) Dump(context.Context) (string, error) { return "", errUnsupported }

// Teardown fails.
func (l *Linux) Teardown(context.Context) error { return errUnsupported }

// Attach fails.
func (l *Linux) Attach(_ context.Context, ep Endpoint) (Endpoint, error) { return ep, errUnsupported }

// Detach fails.
func (l *Linux) Detach(context.Context, Endpoint) error { return errUnsupported }

// Check fails.
func (l *Linux) Check(context.Context, Endpoint) error { return errUnsupported }
