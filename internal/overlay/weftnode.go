package overlay

import (
	"fmt"
	"net/netip"

	"github.com/weft-sdn/weft/internal/api"
)

// DCOSStatus maps a Weft overlay status (api.OverlayOK, ...) to DC/OS's.
func DCOSStatus(s string) OverlayStatus {
	switch s {
	case api.OverlayOK:
		return StatusOK
	case api.OverlayFailed:
		return StatusFailed
	case api.OverlayConfiguring:
		return StatusConfiguring
	}
	return StatusInvalid
}

// NodeAgentInfo renders a Weft node's overlay assignments in DC/OS's
// AgentInfo shape. The overlays' configuration comes from cfg when it has
// them (the master's state), else from what the node recorded (an agent
// knows its own assignments only). Unlike DC/OS, the state carries the
// error of a failed overlay.
func NodeAgentInfo(n *api.Node, cfg *NetworkConfig) AgentInfo {
	ai := AgentInfo{IP: n.UnderlayIP, Overlays: []AgentOverlayInfo{}}
	var backend *BackendInfo
	if b := n.OverlayBackend; b != nil {
		vx := VXLANInfo{VNI: b.VNI, VTEPMAC: n.VTEPMAC, VTEPName: b.VTEPName, VTEPMTU: b.MTU}
		if n.VTEPIP != "" {
			vx.VTEPIP = fmt.Sprintf("%s/%d", n.VTEPIP, b.VTEPPrefix)
		}
		if n.VTEPIP6 != "" {
			vx.VTEPIP6 = fmt.Sprintf("%s/%d", n.VTEPIP6, b.VTEPPrefix6)
		}
		backend = &BackendInfo{VXLAN: vx}
	}
	for _, o := range n.Overlays {
		info, ok := OverlayInfo{}, false
		if cfg != nil {
			info, ok = cfg.WithDefaults().Overlay(o.Name)
		}
		if !ok {
			enabled := true
			info = OverlayInfo{Enabled: &enabled, Name: o.Name, Subnet: o.OverlaySubnet, Subnet6: o.OverlaySubnet6}
			if p, err := netip.ParsePrefix(o.Subnet); err == nil {
				info.Prefix = p.Bits()
			}
			if p, err := netip.ParsePrefix(o.Subnet6); err == nil {
				info.Prefix6 = p.Bits()
			}
		}
		aoi := AgentOverlayInfo{Backend: backend, Info: info, Subnet: o.Subnet, Subnet6: o.Subnet6}
		if o.Status != "" {
			aoi.State = &OverlayState{Status: DCOSStatus(o.Status), Error: o.Error}
		}
		if b := o.MesosBridge; b != nil {
			aoi.MesosBridge = &BridgeInfo{Name: b.Name, IP: b.IP, IP6: b.IP6}
		}
		if b := o.DockerBridge; b != nil {
			aoi.DockerBridge = &BridgeInfo{Name: b.Name, IP: b.IP, IP6: b.IP6}
		}
		ai.Overlays = append(ai.Overlays, aoi)
	}
	return ai
}
