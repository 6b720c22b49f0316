package mesosmanager

import (
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// endpoint is one JSON endpoint of the introspection page.
type endpoint struct {
	Path string
	Doc  string
}

// endpoints are listed on the index page in this order.
var endpoints = []endpoint{
	{"/status", "summary: leader, sync state, last event, counts"},
	{"/apps", "cached apps and pods with their managed networks and parsed labels"},
	{"/tasks", "followed tasks and pod instances on managed networks"},
	{"/ports", "ports the manager looks after"},
	{"/sync", "sync state: last resync, resync count, stream connected, reconnects"},
	{"/events/last", "last Marathon event handled: type, time, lag"},
	{"/leader", "leader election state of this replica"},
	{"/problems", "problems: bad labels and the like, naming task and label"},
	{"/agents", "Mesos agents followed by the cleanup module"},
	{"/metrics", "Prometheus metrics"},
	{"/healthz", "liveness"},
}

var indexPage = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>weft mesos-manager {{.ID}}</title></head>
<body>
<h1>weft mesos-manager</h1>
<p>replica <b>{{.ID}}</b>: {{if .Leading}}<b>leader</b>{{else}}standby (leader: {{if .Holder}}{{.Holder}}{{else}}unknown{{end}}){{end}}</p>
<ul>
{{range .Endpoints}}<li><a href="{{.Path}}">{{.Path}}</a> &mdash; {{.Doc}}</li>
{{end}}</ul>
</body></html>
`))

// Status is the summary of /status.
type Status struct {
	Leader    LeaderStatus `json:"leader"`
	Sync      SyncState    `json:"sync"`
	LastEvent LastEvent    `json:"last_event"`
	Apps      int          `json:"apps"`
	Tasks     int          `json:"tasks"`
	Ports     int          `json:"ports"`
	Problems  int          `json:"problems"`
	Cleanup   bool         `json:"cleanup"`
}

func (m *Manager) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		st := m.elector.Status()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = indexPage.Execute(w, struct {
			LeaderStatus
			Endpoints []endpoint
		}{st, endpoints})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, m.Status())
	})
	mux.HandleFunc("GET /apps", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.rec.Apps()) })
	mux.HandleFunc("GET /tasks", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.rec.Tasks()) })
	mux.HandleFunc("GET /ports", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.rec.Ports()) })
	mux.HandleFunc("GET /sync", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.rec.SyncState()) })
	mux.HandleFunc("GET /events/last", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.rec.LastEvent()) })
	mux.HandleFunc("GET /leader", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.elector.Status()) })
	mux.HandleFunc("GET /problems", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.rec.Problems()) })
	mux.HandleFunc("GET /agents", func(w http.ResponseWriter, r *http.Request) {
		if m.cleanup == nil {
			writeJSON(w, []AgentView{})
			return
		}
		writeJSON(w, m.cleanup.Agents())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.m.registry, promhttp.HandlerOpts{}))
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Status returns the summary the /status endpoint shows.
func (m *Manager) Status() Status {
	m.rec.mu.Lock()
	st := Status{
		Sync: m.rec.sync, LastEvent: m.rec.last, Apps: len(m.rec.specs), Tasks: len(m.rec.insts),
		Ports: len(m.rec.ports), Problems: len(m.rec.problems), Cleanup: m.cleanup != nil,
	}
	m.rec.mu.Unlock()
	st.Leader = m.elector.Status()
	return st
}

// Apps returns the cached apps and pods, sorted by id.
func (r *Reconciler) Apps() []AppView {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]AppView, 0, len(r.specs))
	for _, id := range sortedKeys(r.specs) {
		out = append(out, appViewOf(r.specs[id]))
	}
	return out
}

// Tasks returns the followed tasks and pod instances, sorted by key.
func (r *Reconciler) Tasks() []TaskView {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TaskView, 0, len(r.insts))
	for _, k := range sortedKeys(r.insts) {
		i := r.insts[k]
		v := TaskView{
			Key: i.Key, Kind: string(i.Kind), AppID: i.AppID, TaskID: i.TaskID, InstanceID: i.InstanceID,
			Host: i.Host, AgentID: i.AgentID, State: i.State, ContainerID: i.ContainerID,
			Managed: isManagedSpec(r.specs[i.AppID]), Ports: i.Ports, Synced: i.Synced,
			UnreachableSince: i.UnreachableSince, Releasing: i.Releasing, NextRetry: i.NextRetry, Retries: i.Retries,
		}
		for _, a := range i.Addresses {
			v.Addresses = append(v.Addresses, a.String())
		}
		out = append(out, v)
	}
	return out
}

// Ports returns the ports the manager looks after, sorted by fq_name.
func (r *Reconciler) Ports() []PortView {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PortView, 0, len(r.ports))
	for _, p := range r.ports {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FQName < out[j].FQName })
	return out
}

// Problems returns the open problems, sorted by task and label.
func (r *Reconciler) Problems() []Problem {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Problem, 0, len(r.problems))
	for _, p := range r.problems {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Task != out[j].Task {
			return out[i].Task < out[j].Task
		}
		if out[i].Label != out[j].Label {
			return out[i].Label < out[j].Label
		}
		return out[i].Message < out[j].Message
	})
	return out
}

// SyncState returns the state of the sync with Marathon.
func (r *Reconciler) SyncState() SyncState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sync
}

// LastEvent returns the last Marathon event handled.
func (r *Reconciler) LastEvent() LastEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}
