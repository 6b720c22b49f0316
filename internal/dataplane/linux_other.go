//go:build !linux

package dataplane

import (
	"context"
	"errors"
)

// errUnsupported is returned by every method of Linux off Linux.
var errUnsupported = errors.New("dataplane: the linux data plane needs linux")

// Linux is the netlink data plane; off Linux it only returns errors.
type Linux struct{}

// NewLinux fails off Linux.
func NewLinux(cfg Config) (*Linux, error) { return nil, errUnsupported }

// Changes returns 0 off Linux.
func (l *Linux) Changes() int64 { return 0 }

// Attach fails off Linux.
func (l *Linux) Attach(ctx context.Context, n Network, ep Endpoint) (Endpoint, error) {
	return ep, errUnsupported
}

// Withdraw fails off Linux.
func (l *Linux) Withdraw(ctx context.Context, n Network, ep Endpoint) error { return errUnsupported }

// Detach fails off Linux.
func (l *Linux) Detach(ctx context.Context, n Network, ep Endpoint) error { return errUnsupported }

// Check fails off Linux.
func (l *Linux) Check(ctx context.Context, n Network, ep Endpoint) error { return errUnsupported }

// Sync fails off Linux.
func (l *Linux) Sync(ctx context.Context, s State) error { return errUnsupported }

// Dump fails off Linux.
func (l *Linux) Dump(ctx context.Context) (string, error) { return "", errUnsupported }

// Teardown fails off Linux.
func (l *Linux) Teardown(ctx context.Context) error { return errUnsupported }
