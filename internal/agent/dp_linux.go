package agent

import "github.com/weft-sdn/weft/internal/dataplane"

// newLinuxDataPlane builds the kernel data plane.
func newLinuxDataPlane(cfg dataplane.Config) (DataPlane, error) {
	l, err := dataplane.NewLinux(cfg)
	if err != nil {
		return nil, err
	}
	return l, nil
}
