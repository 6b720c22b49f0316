package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weft-sdn/weft/internal/api"
)

// maxLocalBody bounds a local API request body.
const maxLocalBody = 1 << 20

// LocalHandler serves the local API of api/agent.go (the CNI plugin's):
//
//	POST /v1/attach  AttachRequest  -> 200 AttachResult
//	POST /v1/detach  DetachRequest  -> 204
//	POST /v1/check   DetachRequest  -> 204, or an error saying what drifted
//	POST /v1/gc      GCRequest      -> 204
//	GET  /v1/status                 -> 200 AgentStatus
//	GET  /overlay-agent/overlay     -> 200 DC/OS's agent overlay info
func (a *Agent) LocalHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/attach", func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeAttachRequest(r.Body)
		if err != nil {
			writeLocalError(w, err)
			return
		}
		res, err := a.Attach(r.Context(), req)
		if err != nil {
			a.log.Warn("attach failed", "container", req.ContainerID, "ifname", req.IfName, "network", req.Network, "err", err)
			writeLocalError(w, err)
			return
		}
		writeLocalJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST /v1/detach", func(w http.ResponseWriter, r *http.Request) {
		var req api.DetachRequest
		if err := decodeLocal(r.Body, &req); err != nil {
			writeLocalError(w, err)
			return
		}
		if err := a.Detach(r.Context(), req); err != nil {
			a.log.Warn("detach failed", "container", req.ContainerID, "ifname", req.IfName, "err", err)
			writeLocalError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/check", func(w http.ResponseWriter, r *http.Request) {
		var req api.DetachRequest
		if err := decodeLocal(r.Body, &req); err != nil {
			writeLocalError(w, err)
			return
		}
		if err := a.Check(r.Context(), req); err != nil {
			writeLocalError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/gc", func(w http.ResponseWriter, r *http.Request) {
		var req api.GCRequest
		if err := decodeLocal(r.Body, &req); err != nil {
			writeLocalError(w, err)
			return
		}
		if err := a.GC(r.Context(), req); err != nil {
			writeLocalError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeLocalJSON(w, http.StatusOK, a.Status())
	})
	mux.Handle("/overlay-agent/overlay", a.OverlayAgentHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeLocalError(w, &api.Error{Message: fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path), Code: http.StatusNotFound})
	})
	return mux
}

// MetricsHandler serves the agent's Prometheus metrics.
func (a *Agent) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{})
}

// decodeAttachRequest reads and strictly decodes an attach request body.
func decodeAttachRequest(body io.Reader) (api.AttachRequest, error) {
	var req api.AttachRequest
	if err := decodeLocal(body, &req); err != nil {
		return api.AttachRequest{}, err
	}
	return req, nil
}

// decodeLocal reads a bounded body and decodes it strictly: unknown
// fields, trailing data and wrong types are errors naming the field.
func decodeLocal(body io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(body, maxLocalBody+1))
	if err != nil {
		return api.Invalid("", "cannot read request body: %v", err)
	}
	if len(b) > maxLocalBody {
		return &api.Error{Message: fmt.Sprintf("request body exceeds %d bytes", maxLocalBody), Code: http.StatusRequestEntityTooLarge}
	}
	return api.DecodeStrict(b, v)
}

func writeLocalJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeLocalError answers with the {"error","field"} body: an *api.Error
// keeps its status and field, with the context the agent wrapped around
// it kept in the message; not ready, cancelled and timed out are 503;
// anything else is 500.
func writeLocalError(w http.ResponseWriter, err error) {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		code := ae.Code
		if code == 0 {
			code = http.StatusInternalServerError
		}
		msg := ae.Message
		if full := err.Error(); full != ae.Error() {
			msg = strings.TrimSuffix(full, ae.Error()) + ae.Message
		}
		ae = &api.Error{Message: msg, Field: ae.Field, Code: code}
	case errors.Is(err, ErrNotReady), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		ae = &api.Error{Message: err.Error(), Code: http.StatusServiceUnavailable}
	default:
		ae = &api.Error{Message: err.Error(), Code: http.StatusInternalServerError}
	}
	writeLocalJSON(w, ae.Code, ae)
}
