package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// Version is the build version, set with -ldflags at build time.
var Version = "dev"

// watchHeartbeat is how often an idle watch stream gets an empty line, so
// that clients and proxies can tell a quiet stream from a dead one.
const watchHeartbeat = 15 * time.Second

// Server is the controller's HTTP API.
type Server struct {
	reg     *Registry
	ipam    addressManager
	kv      store.KV
	log     *slog.Logger
	metrics *metrics
	ready   atomic.Bool
	mux     *http.ServeMux
}

type metrics struct {
	registry     *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	allocations  *prometheus.CounterVec
	releases     prometheus.Counter
	blocks       *prometheus.CounterVec
	watchClients prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_api_requests_total", Help: "API requests by method, route and status code.",
		}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_api_request_duration_seconds", Help: "API request latency by method and route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"method", "route"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_ipam_allocations_total", Help: "Addresses reserved, by family.",
		}, []string{"family"}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_ipam_releases_total", Help: "Addresses released into quarantine.",
		}),
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_ipam_block_operations_total", Help: "Per-node block leases and returns.",
		}, []string{"op"}),
		watchClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_watch_clients", Help: "Open /v1/watch streams.",
		}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.allocations, m.releases, m.blocks, m.watchClients,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// NewServer builds the HTTP API over a registry and the IPAM.
func NewServer(reg *Registry, am addressManager, kv store.KV, log *slog.Logger) *Server {
	s := &Server{reg: reg, ipam: am, kv: kv, log: log, metrics: newMetrics(), mux: http.NewServeMux()}
	s.routes()
	return s
}

// SetReady flips /readyz.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

func (s *Server) routes() {
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
		s.mux.Handle(pattern, s.instrument(fn))
	}
	h("GET /v1/version", s.handleVersion)
	h("GET /v1/watch", s.handleWatch)
	h("POST /v1/ipam/allocate", s.handleAllocate)
	h("POST /v1/ipam/release", s.handleRelease)
	h("POST /v1/ipam/assign", s.handleAssign)
	h("POST /v1/ipam/blocks", s.handleLeaseBlock)
	h("POST /v1/ipam/blocks/release", s.handleReleaseBlock)
	h("PUT /v1/leases/{name}", s.handleAcquireLease)
	h("GET /v1/leases/{name}", s.handleGetLease)
	h("DELETE /v1/leases/{name}", s.handleReleaseLease)
	h("POST /v1/nodes/register", s.handleRegisterNode)
	h("POST /v1/nodes/{name}/heartbeat", s.handleHeartbeat)
	h("POST /v1/nodes/{name}/overlay-status", s.handleOverlayStatus)
	h("POST /v1/nodes/{name}/port-sync", s.handlePortSync)
	h("GET /v1/overlays", s.handleOverlayUsage)
	h("GET /overlay-master/state", s.handleOverlayState)
	h("POST /overlay-master/agents/delete", s.handleDeleteAgents)
	h("/overlay-master/agents/delete", func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Allow", http.MethodPost)
		return &api.Error{Message: "agents/delete takes POST {\"agents\": [\"<IPv4>\", ...]}", Code: http.StatusMethodNotAllowed}
	})
	h("GET /v1/{plural}", s.handleList)
	h("POST /v1/{plural}", s.handleCreate)
	h("GET /v1/{plural}/{id}", s.handleGet)
	h("PUT /v1/{plural}/{id}", s.handleUpdate)
	h("DELETE /v1/{plural}/{id}", s.handleDelete)
	h("/v1/", func(http.ResponseWriter, *http.Request) error {
		return &api.Error{Message: "no such endpoint; see docs/api.md", Code: http.StatusNotFound}
	})
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) instrument(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		if err := fn(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
		route := r.Pattern
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		s.metrics.requests.WithLabelValues(r.Method, route, strconv.Itoa(sw.code)).Inc()
		s.metrics.latency.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
	})
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			ae = &api.Error{Message: "request cancelled or timed out", Code: http.StatusServiceUnavailable}
		default:
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			ae = &api.Error{Message: "internal error: " + err.Error(), Code: http.StatusInternalServerError}
		}
	}
	writeJSON(w, ae.Code, ae)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, api.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &api.Error{Message: fmt.Sprintf("request body exceeds %d bytes", api.MaxBodyBytes), Code: http.StatusRequestEntityTooLarge}
	}
	if err != nil {
		return nil, api.Invalid("", "cannot read request body: %v", err)
	}
	return body, nil
}

func kindOf(r *http.Request) (api.Kind, error) {
	k, ok := api.KindForPlural(r.PathValue("plural"))
	if !ok {
		return "", &api.Error{Message: fmt.Sprintf("unknown collection %q; see docs/api.md", r.PathValue("plural")), Code: http.StatusNotFound}
	}
	return k, nil
}

func (s *Server) handleVersion(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, api.Version{Version: Version, GoVersion: runtime.Version()})
	return nil
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if !s.ready.Load() {
		http.Error(w, "starting\n", http.StatusServiceUnavailable)
		return
	}
	if _, err := s.kv.Revision(ctx); err != nil {
		http.Error(w, "store unreachable: "+err.Error()+"\n", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok\n")
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) error {
	k, err := kindOf(r)
	if err != nil {
		return err
	}
	if k.IPAMOwned() {
		return api.Invalid("kind", "%s objects are made through /v1/ipam/allocate and /v1/ipam/blocks", strings.ReplaceAll(string(k), "_", " "))
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	obj, err := api.DecodeObject(k, body)
	if err != nil {
		return err
	}
	obj, err = s.reg.Create(r.Context(), obj)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/"+k.Plural()+"/"+obj.GetMeta().UUID)
	writeJSON(w, http.StatusCreated, obj)
	return nil
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) error {
	k, err := kindOf(r)
	if err != nil {
		return err
	}
	obj, err := s.reg.Get(r.Context(), k, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, obj)
	return nil
}

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request) error {
	k, err := kindOf(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	cur, err := s.reg.Get(r.Context(), k, id)
	if err != nil {
		return err
	}
	// Names may be left out of an update body: fill them from the object.
	obj := api.NewObject(k)
	if err := api.DecodeStrict(body, obj); err != nil {
		return err
	}
	m, cm := obj.GetMeta(), cur.GetMeta()
	if m.Kind != "" && m.Kind != k {
		return api.Invalid("kind", "kind %q does not match the collection (%s)", m.Kind, k)
	}
	m.Kind = k
	if m.Name == "" && m.FQName == "" {
		m.Name, m.Parent, m.FQName = cm.Name, cm.Parent, cm.FQName
	}
	if err := api.Validate(obj); err != nil {
		return err
	}
	obj, err = s.reg.Update(r.Context(), k, id, obj)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, obj)
	return nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) error {
	k, err := kindOf(r)
	if err != nil {
		return err
	}
	if err := s.reg.Delete(r.Context(), k, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleList answers a list, or the single object named by ?fq_name=.
// Filters: parent, network, node, owner, and label=k=v (repeatable).
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) error {
	k, err := kindOf(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if fq := q.Get("fq_name"); fq != "" {
		// A short name resolves in the kind's default parent.
		obj, err := s.reg.Resolve(r.Context(), k, fq)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, obj)
		return nil
	}
	keep, err := s.listFilter(r.Context(), k, q)
	if err != nil {
		return err
	}
	objs, rev, err := s.reg.List(r.Context(), k, keep)
	if err != nil {
		return err
	}
	out := api.List{Kind: k, Revision: rev, Items: make([]json.RawMessage, 0, len(objs))}
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, b)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listFilter(ctx context.Context, k api.Kind, q map[string][]string) (func(api.Object) bool, error) {
	var preds []func(api.Object) bool
	get := func(key string) string {
		if v := q[key]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if p := get("parent"); p != "" {
		preds = append(preds, func(o api.Object) bool { return o.GetMeta().Parent == p })
	}
	if ref := get("network"); ref != "" {
		n, err := s.reg.Resolve(ctx, api.KindNetwork, ref)
		if err != nil {
			if errors.Is(err, api.ErrNotFound) {
				return nil, api.Invalid("network", "network %q does not exist", ref)
			}
			return nil, err
		}
		fq := n.GetMeta().FQName
		preds = append(preds, func(o api.Object) bool {
			switch x := o.(type) {
			case *api.Port:
				return x.Network == fq
			case *api.IPReservation:
				return x.Network == fq
			case *api.Block:
				return x.Network == fq
			case *api.Service:
				return x.Network == fq
			}
			return o.GetMeta().Parent == fq
		})
	}
	if node := get("node"); node != "" {
		preds = append(preds, func(o api.Object) bool {
			switch x := o.(type) {
			case *api.Port:
				return x.Node == node
			case *api.IPReservation:
				return x.Node == node
			case *api.Block:
				return x.Node == node
			}
			return false
		})
	}
	if owner := get("owner"); owner != "" {
		preds = append(preds, func(o api.Object) bool {
			x, ok := o.(*api.IPReservation)
			return ok && x.Owner == owner
		})
	}
	for _, l := range q["label"] {
		key, val, ok := strings.Cut(l, "=")
		if !ok || key == "" {
			return nil, api.Invalid("label", "%q is not key=value", l)
		}
		preds = append(preds, func(o api.Object) bool {
			v, ok := o.GetMeta().Labels[key]
			return ok && v == val
		})
	}
	if len(preds) == 0 {
		return nil, nil
	}
	return func(o api.Object) bool {
		for _, p := range preds {
			if !p(o) {
				return false
			}
		}
		return true
	}, nil
}

func (s *Server) decode(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return api.DecodeStrict(body, v)
}

func (s *Server) handleAllocate(w http.ResponseWriter, r *http.Request) error {
	var req api.AllocateRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	if req.Network == "" {
		return api.Invalid("network", "is required (uuid or fq_name of a network)")
	}
	if req.Node != "" {
		if _, err := s.reg.GetByFQName(r.Context(), api.KindNode, req.Node); err != nil {
			return api.Invalid("node", "node %q is not registered", req.Node)
		}
	}
	n, err := s.reg.AllocatableNetwork(r.Context(), req.Network)
	if err != nil {
		return err
	}
	res, err := s.ipam.Allocate(r.Context(), n, req)
	if err != nil {
		return err
	}
	for _, x := range res {
		fam := "ipv4"
		if strings.Contains(x.Address, ":") {
			fam = "ipv6"
		}
		s.metrics.allocations.WithLabelValues(fam).Inc()
	}
	writeJSON(w, http.StatusCreated, api.AllocateResponse{Reservations: res})
	return nil
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) error {
	var req api.ReleaseRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	if req.IP == "" && req.Owner == "" && req.Node == "" {
		return api.Invalid("", "say what to release: ip (with network), owner, or node")
	}
	if req.IP != "" && req.Network == "" {
		return api.Invalid("network", "is required to release an address")
	}
	var np *ipamNetwork
	if req.Network != "" {
		n, err := s.reg.IPAMNetwork(r.Context(), req.Network)
		if err != nil {
			return err
		}
		np = &n
	}
	res, err := s.ipam.Release(r.Context(), np, req)
	if err != nil {
		return err
	}
	s.metrics.releases.Add(float64(len(res)))
	if res == nil {
		res = []api.IPReservation{}
	}
	writeJSON(w, http.StatusOK, api.ReleaseResponse{Released: res})
	return nil
}

func (s *Server) handleAssign(w http.ResponseWriter, r *http.Request) error {
	var req api.AssignRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	if req.Network == "" {
		return api.Invalid("network", "is required (uuid or fq_name of a network)")
	}
	n, err := s.reg.IPAMNetwork(r.Context(), req.Network)
	if err != nil {
		return err
	}
	res, err := s.ipam.Assign(r.Context(), n, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// handlePortSync does a node agent's batch of port work (see
// api.PortSyncRequest); every item has its own result.
func (s *Server) handlePortSync(w http.ResponseWriter, r *http.Request) error {
	var req api.PortSyncRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	resp, err := s.reg.SyncPorts(r.Context(), r.PathValue("name"), req)
	if err != nil {
		return err
	}
	for _, d := range resp.Detach {
		s.metrics.releases.Add(float64(len(d.Released)))
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) blockRequest(r *http.Request) (api.BlockRequest, ipamNetwork, error) {
	var req api.BlockRequest
	if err := s.decode(r, &req); err != nil {
		return req, ipamNetwork{}, err
	}
	if req.Network == "" {
		return req, ipamNetwork{}, api.Invalid("network", "is required (uuid or fq_name of a network)")
	}
	if req.Node == "" {
		return req, ipamNetwork{}, api.Invalid("node", "is required")
	}
	if _, err := s.reg.GetByFQName(r.Context(), api.KindNode, req.Node); err != nil {
		return req, ipamNetwork{}, api.Invalid("node", "node %q is not registered", req.Node)
	}
	n, err := s.reg.AllocatableNetwork(r.Context(), req.Network)
	return req, n, err
}

func (s *Server) handleLeaseBlock(w http.ResponseWriter, r *http.Request) error {
	req, n, err := s.blockRequest(r)
	if err != nil {
		return err
	}
	b, err := s.ipam.LeaseBlock(r.Context(), n, req.Node, req.Family)
	if err != nil {
		return err
	}
	s.metrics.blocks.WithLabelValues("lease").Inc()
	writeJSON(w, http.StatusCreated, b)
	return nil
}

func (s *Server) handleReleaseBlock(w http.ResponseWriter, r *http.Request) error {
	req, n, err := s.blockRequest(r)
	if err != nil {
		return err
	}
	if req.CIDR == "" {
		return api.Invalid("cidr", "is required (the block to return)")
	}
	if err := s.ipam.ReleaseBlock(r.Context(), n, req.CIDR, req.Node); err != nil {
		return err
	}
	s.metrics.blocks.WithLabelValues("release").Inc()
	w.WriteHeader(http.StatusNoContent)
	return nil
}
