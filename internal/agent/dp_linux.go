package agent

import (
	"log/slog"

	"github.com/weft-sdn/weft/internal/dataplane"
	"github.com/weft-sdn/weft/internal/overlaydp"
)

// newLinuxDataPlane builds the kernel data plane.
func newLinuxDataPlane(cfg dataplane.Config) (DataPlane, error) {
	l, err := dataplane.NewLinux(cfg)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// newLinuxOverlayDataPlane builds the kernel data plane of the overlays in
// the node's namespace (netns; empty is the agent's own).
func newLinuxOverlayDataPlane(netns string, log *slog.Logger) (OverlayDataPlane, error) {
	l, err := overlaydp.NewLinux(overlaydp.Options{Netns: netns, Logger: log})
	if err != nil {
		return nil, err
	}
	return l, nil
}
