//go:build !linux

package emulator

import (
	"context"
	"errors"
	"os"
	"os/exec"
)

// errUnsupported: the emulator needs Linux namespaces.
var errUnsupported = errors.New("mesos agent emulator: only supported on Linux")

func startTask(string, []string, []string, bool, *os.File, *os.File) (*taskProc, *os.File, error) {
	return nil, nil, errUnsupported
}
func startIn(_ string, cmd *exec.Cmd) error { return cmd.Start() }
func inNetns(path string, fn func() error) error {
	if path != "" {
		return errUnsupported
	}
	return fn()
}
func release(w *os.File) error                                 { return w.Close() }
func (p *taskProc) alive() bool                                { return false }
func (p *taskProc) kill() error                                { return errUnsupported }
func (p *taskProc) reap() exitInfo                             { return exitInfo{} }
func watch(*taskProc) (*procWatcher, error)                    { return nil, errUnsupported }
func (w *procWatcher) wait() bool                              { return false }
func (w *procWatcher) close()                                  {}
func waitGone(context.Context, *taskProc) error                { return nil }
func bindNetns(int, string) error                              { return errUnsupported }
func isNetnsHandle(string) (bool, error)                       { return false, nil }
func unmountNetns(string) error                                { return errUnsupported }
func setHostname(int, string) error                            { return errUnsupported }
func loopbackUp(string) error                                  { return errUnsupported }
func bindNetworkFiles(context.Context, int, [][2]string) error { return errUnsupported }
func ensureSharedRoot(string) error                            { return errUnsupported }

var errNoMountTools = errors.New("nsenter or mount not found")

// ReleaseRoot is a no-op off Linux.
func ReleaseRoot(string) error { return nil }

// KillNetnsProcesses is a no-op off Linux.
func KillNetnsProcesses(string) error { return nil }
