package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/overlay"
)

// OverlayState builds the overlay master's state in DC/OS's shape
// (GET /overlay-master/state): every node with its VTEP and overlays, and
// the current configuration. Unlike DC/OS, the state carries the error of
// a failed overlay too.
func (r *Registry) OverlayState(ctx context.Context) (overlay.State, error) {
	st := overlay.State{Agents: []overlay.AgentInfo{}}
	if r.overlay == nil {
		return st, api.NotFound("no overlay is configured (start the controller with --overlay-config or --dcos-overlay)")
	}
	st.Network = r.overlay.cfg
	objs, _, err := r.List(ctx, api.KindNode, nil)
	if err != nil {
		return st, err
	}
	for _, o := range objs {
		n := o.(*api.Node)
		if len(n.Overlays) == 0 {
			continue
		}
		st.Agents = append(st.Agents, overlay.NodeAgentInfo(n, &r.overlay.cfg))
	}
	slices.SortFunc(st.Agents, func(a, b overlay.AgentInfo) int { return strings.Compare(a.IP, b.IP) })
	return st, nil
}

func (s *Server) handleOverlayState(w http.ResponseWriter, r *http.Request) error {
	st, err := s.reg.OverlayState(r.Context())
	if err != nil {
		return err
	}
	writeCompactJSON(w, http.StatusOK, st)
	return nil
}

// handleDeleteAgents is DC/OS's POST /overlay-master/agents/delete: body
// {"agents":["10.0.0.5", ...]} (IPv4 strings). The nodes with those
// underlay addresses are deleted and their VTEPs, subnets, blocks and
// addresses freed; unknown addresses are skipped. The answer is the new
// state. Bad bodies get a 400 naming the field (DC/OS answers an empty
// 400).
func (s *Server) handleDeleteAgents(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	ips, err := parseDeleteAgents(body)
	if err != nil {
		return err
	}
	deleted, err := s.reg.DeleteNodesByIP(r.Context(), ips)
	if err != nil {
		return err
	}
	s.log.Info("overlay agents deleted", "asked", len(ips), "deleted", deleted)
	return s.handleOverlayState(w, r)
}

// parseDeleteAgents validates an agents/delete body.
func parseDeleteAgents(body []byte) ([]netip.Addr, error) {
	var req struct {
		Agents *[]json.RawMessage `json:"agents"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, api.Invalid("", "body is not a JSON object {\"agents\": [\"<IPv4>\", ...]}: %v", err)
	}
	if dec.More() {
		return nil, api.Invalid("", "trailing data after the JSON object")
	}
	if req.Agents == nil {
		return nil, api.Invalid("agents", "is required: a list of agent IPv4 addresses")
	}
	ips := make([]netip.Addr, 0, len(*req.Agents))
	for i, raw := range *req.Agents {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, api.Invalid(fmt.Sprintf("agents[%d]", i), "%s is not a string", raw)
		}
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, api.Invalid(fmt.Sprintf("agents[%d]", i), "%q is not an IPv4 address", s)
		}
		ips = append(ips, a)
	}
	return ips, nil
}

func (s *Server) handleOverlayStatus(w http.ResponseWriter, r *http.Request) error {
	var rep api.OverlayStatusReport
	if err := s.decode(r, &rep); err != nil {
		return err
	}
	n, err := s.reg.ReportOverlayStatus(r.Context(), r.PathValue("name"), rep)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (s *Server) handleOverlayUsage(w http.ResponseWriter, r *http.Request) error {
	u, err := s.reg.OverlayUsage(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"overlays": u})
	return nil
}

// writeCompactJSON writes v in one line, as DC/OS's endpoints do.
func writeCompactJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
