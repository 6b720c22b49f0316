package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	mesosemu "github.com/weft-sdn/weft/internal/mesos/emulator"
)

// Agent is a Mesos agent as the emulator's scheduler uses it: it
// launches and kills tasks, lists its containers and reports their status
// updates. Container snapshots carry the whole status history of a task
// (Container.Statuses, oldest first); the scheduler applies each status
// once, by its position in that history, so an implementation may report
// a snapshot more than once.
type Agent interface {
	// Launch runs a task and returns its container. A launch the agent
	// accepted but could not complete is a container whose last status is
	// TASK_FAILED (with Mesos' message) and a nil error; an error means
	// the agent did not take the task.
	Launch(ctx context.Context, spec mesosemu.TaskSpec) (mesosemu.Container, error)
	// Kill kills a container's task and returns its container. A
	// container the agent does not know gives an error wrapping
	// ErrContainerNotFound; a container whose cleanup failed is returned
	// with an error.
	Kill(ctx context.Context, containerID string) (mesosemu.Container, error)
	// Containers lists the containers that are not yet destroyed.
	Containers(ctx context.Context) ([]mesosemu.Container, error)
	// Watch calls fn with a snapshot of every container whose status
	// history grew (including containers that ended and were destroyed),
	// until ctx is done. fn must not block for long.
	Watch(ctx context.Context, fn func(mesosemu.Container)) error
}

// ErrContainerNotFound is wrapped by Agent.Kill for an unknown container.
var ErrContainerNotFound = errors.New("container not found")

// DefaultPollInterval is how often HTTPAgent.Watch polls GET /containers.
const DefaultPollInterval = 200 * time.Millisecond

// HTTPAgent is an Agent backed by the HTTP API of a Mesos agent emulator
// (internal/mesos/emulator) on a unix socket. The API has no status
// stream, so Watch polls GET /containers and diffs the status histories;
// containers that disappear from the list are fetched once more through
// GET /containers/{id} to report their final statuses.
type HTTPAgent struct {
	socket   string
	client   *http.Client
	interval time.Duration
	log      *slog.Logger
}

// NewHTTPAgent returns an agent client for the emulator socket (a path,
// with or without a "unix:" prefix). log may be nil.
func NewHTTPAgent(socket string, log *slog.Logger) *HTTPAgent {
	socket = strings.TrimPrefix(socket, "unix:")
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HTTPAgent{
		socket:   socket,
		interval: DefaultPollInterval,
		log:      log,
		client: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}},
	}
}

// SetPollInterval changes how often Watch polls (before Watch starts).
func (a *HTTPAgent) SetPollInterval(d time.Duration) {
	if d > 0 {
		a.interval = d
	}
}

// agentError is the emulator's error body.
type agentError struct {
	Error     string              `json:"error"`
	Container *mesosemu.Container `json:"container,omitempty"`
}

// callTimeout bounds one request to the agent (a launch waits for the
// CNI plugins).
const callTimeout = 2 * time.Minute

// call sends a JSON request and returns the status code and body.
func (a *HTTPAgent) call(ctx context.Context, method, path string, in any) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://mesos-agent"+path, body)
	if err != nil {
		return 0, nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("mesos agent emulator at %s: %w", a.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("mesos agent emulator at %s: read %s: %w", a.socket, path, err)
	}
	return resp.StatusCode, b, nil
}

func errorMessage(code int, body []byte) string {
	var e agentError
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return fmt.Sprintf("HTTP %d", code)
}

// Launch implements Agent (POST /launch).
func (a *HTTPAgent) Launch(ctx context.Context, spec mesosemu.TaskSpec) (mesosemu.Container, error) {
	code, body, err := a.call(ctx, http.MethodPost, "/launch", spec)
	if err != nil {
		return mesosemu.Container{}, err
	}
	if code != http.StatusOK {
		return mesosemu.Container{}, fmt.Errorf("launch %s: %s", spec.TaskID, errorMessage(code, body))
	}
	var c mesosemu.Container
	if err := json.Unmarshal(body, &c); err != nil {
		return mesosemu.Container{}, fmt.Errorf("launch %s: decode container: %w", spec.TaskID, err)
	}
	return c, nil
}

// Kill implements Agent (POST /kill).
func (a *HTTPAgent) Kill(ctx context.Context, containerID string) (mesosemu.Container, error) {
	code, body, err := a.call(ctx, http.MethodPost, "/kill", map[string]string{"container_id": containerID})
	if err != nil {
		return mesosemu.Container{}, err
	}
	switch code {
	case http.StatusOK:
		var c mesosemu.Container
		if err := json.Unmarshal(body, &c); err != nil {
			return mesosemu.Container{}, fmt.Errorf("kill %s: decode container: %w", containerID, err)
		}
		return c, nil
	case http.StatusNotFound:
		return mesosemu.Container{}, fmt.Errorf("kill %s: %w", containerID, ErrContainerNotFound)
	default:
		var e agentError
		_ = json.Unmarshal(body, &e)
		var c mesosemu.Container
		if e.Container != nil {
			c = *e.Container
		}
		return c, fmt.Errorf("kill %s: %s", containerID, errorMessage(code, body))
	}
}

// Containers implements Agent (GET /containers).
func (a *HTTPAgent) Containers(ctx context.Context) ([]mesosemu.Container, error) {
	code, body, err := a.call(ctx, http.MethodGet, "/containers", nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("list containers: %s", errorMessage(code, body))
	}
	var cs []mesosemu.Container
	if err := json.Unmarshal(body, &cs); err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return cs, nil
}

// container fetches one container (also a destroyed one); ok is false
// when the agent does not know it.
func (a *HTTPAgent) container(ctx context.Context, id string) (mesosemu.Container, bool, error) {
	code, body, err := a.call(ctx, http.MethodGet, "/containers/"+url.PathEscape(id), nil)
	if err != nil {
		return mesosemu.Container{}, false, err
	}
	switch code {
	case http.StatusOK:
		var c mesosemu.Container
		if err := json.Unmarshal(body, &c); err != nil {
			return mesosemu.Container{}, false, fmt.Errorf("get container %s: %w", id, err)
		}
		return c, true, nil
	case http.StatusNotFound:
		return mesosemu.Container{}, false, nil
	default:
		return mesosemu.Container{}, false, fmt.Errorf("get container %s: %s", id, errorMessage(code, body))
	}
}

// AgentInfo is what an agent says about itself in its /state.
type AgentInfo struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
}

// Describe reads the agent's id and hostname from GET /state.
func (a *HTTPAgent) Describe(ctx context.Context) (AgentInfo, error) {
	code, body, err := a.call(ctx, http.MethodGet, "/state", nil)
	if err != nil {
		return AgentInfo{}, err
	}
	if code != http.StatusOK {
		return AgentInfo{}, fmt.Errorf("agent state: %s", errorMessage(code, body))
	}
	var info AgentInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return AgentInfo{}, fmt.Errorf("agent state: %w", err)
	}
	if info.ID == "" {
		return AgentInfo{}, errors.New("agent state: no agent id")
	}
	return info, nil
}

// Watch implements Agent by polling GET /containers every poll interval.
func (a *HTTPAgent) Watch(ctx context.Context, fn func(mesosemu.Container)) error {
	defer a.client.CloseIdleConnections()
	seen := map[string]int{} // container id → statuses reported
	t := time.NewTicker(a.interval)
	defer t.Stop()
	failing := false
	for {
		if err := a.poll(ctx, seen, fn); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !failing {
				a.log.Warn("polling the mesos agent emulator failed", "socket", a.socket, "err", err)
			}
			failing = true
		} else if failing {
			a.log.Info("polling the mesos agent emulator works again", "socket", a.socket)
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (a *HTTPAgent) poll(ctx context.Context, seen map[string]int, fn func(mesosemu.Container)) error {
	cs, err := a.Containers(ctx)
	if err != nil {
		return err
	}
	present := make(map[string]bool, len(cs))
	for _, c := range cs {
		present[c.ID] = true
		if n, ok := seen[c.ID]; !ok || len(c.Statuses) > n {
			seen[c.ID] = len(c.Statuses)
			fn(c)
		}
	}
	for id, n := range seen {
		if present[id] {
			continue
		}
		c, ok, err := a.container(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			delete(seen, id)
			continue
		}
		if len(c.Statuses) > n {
			seen[id] = len(c.Statuses)
			fn(c)
		}
		// A destroyed container gets its terminal status last (a failed
		// launch is torn down before TASK_FAILED is recorded): keep
		// asking until it has one.
		if (len(c.Statuses) > 0 && c.Statuses[len(c.Statuses)-1].State.Terminal()) || (c.Destroyed && c.Task.TaskID == "") {
			delete(seen, id)
		}
	}
	return nil
}
