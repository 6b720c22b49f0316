package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Handler returns the agent's HTTP API (see the package documentation).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /launch", a.handleLaunch)
	mux.HandleFunc("POST /kill", a.handleKill)
	mux.HandleFunc("GET /containers", a.handleContainers)
	mux.HandleFunc("GET /containers/{id}", a.handleContainer)
	mux.HandleFunc("GET /state", a.handleState)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// apiError is the body of every non-2xx response.
type apiError struct {
	Error     string     `json:"error"`
	Container *Container `json:"container,omitempty"`
}

const maxBody = 1 << 20

func (a *Agent) handleLaunch(w http.ResponseWriter, r *http.Request) {
	var spec TaskSpec
	if err := decodeBody(r, &spec); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
		return
	}
	if spec.TaskID == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "task_id is required"})
		return
	}
	// A launch is not abandoned when the client goes away, as in Mesos;
	// it stops with the agent.
	ctx, cancel := a.lifetime(r.Context())
	defer cancel()
	c, err := a.Launch(ctx, spec)
	switch {
	case errors.Is(err, ErrClosed):
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
	case err != nil && c.ID == "":
		writeJSON(w, http.StatusConflict, apiError{Error: err.Error()})
	default:
		// A failed launch is a container with a TASK_FAILED status.
		writeJSON(w, http.StatusOK, c)
	}
}

func (a *Agent) handleKill(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ContainerID string `json:"container_id"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
		return
	}
	ctx, cancel := a.lifetime(r.Context())
	defer cancel()
	c, err := a.Kill(ctx, req.ContainerID)
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
	case errors.Is(err, ErrClosed):
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, apiError{Error: err.Error(), Container: &c})
	default:
		writeJSON(w, http.StatusOK, c)
	}
}

func (a *Agent) handleContainers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.Containers())
}

func (a *Agent) handleContainer(w http.ResponseWriter, r *http.Request) {
	c, ok := a.Container(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("%v: %s", ErrNotFound, r.PathValue("id"))})
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (a *Agent) handleState(w http.ResponseWriter, _ *http.Request) {
	body, err := a.State()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{Error: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// lifetime returns a context that ignores the request's cancellation
// but ends with the agent.
func (a *Agent) lifetime(req context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(req))
	stop := context.AfterFunc(a.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid request body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		body, _ = json.Marshal(apiError{Error: err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

// Listen opens the listener for addr: "unix:<path>" or an absolute path
// is a unix socket (a stale socket file is replaced), anything else a TCP
// address.
func Listen(addr string) (net.Listener, error) {
	path, isUnix := strings.CutPrefix(addr, "unix:")
	if !isUnix && strings.HasPrefix(addr, "/") {
		path, isUnix = addr, true
	}
	if !isUnix {
		return net.Listen("tcp", addr)
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	return net.Listen("unix", path)
}

// Serve serves the HTTP API on ln until ctx is done, then shuts the
// server down (waiting up to five seconds for requests in flight).
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
