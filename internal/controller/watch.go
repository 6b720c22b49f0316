package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// compactProbe is how long the watch handler waits for the store to say
// that the requested revision is compacted before it commits to a 200
// stream. The store answers a compacted start at once.
const compactProbe = 250 * time.Millisecond

// EventFromStore turns a store event under the object prefix into an API
// watch event. ok is false for keys that are not objects.
func EventFromStore(ev store.Event) (api.WatchEvent, bool, error) {
	rest, found := strings.CutPrefix(ev.KV.Key, objPrefix)
	if !found {
		return api.WatchEvent{}, false, nil
	}
	kindStr, _, found := strings.Cut(rest, "/")
	if !found {
		return api.WatchEvent{}, false, nil
	}
	k := api.Kind(kindStr)
	out := api.WatchEvent{Kind: k, Revision: ev.KV.ModRevision}
	src := ev.KV
	switch {
	case ev.Type == store.EventDelete:
		out.Type = api.EventDeleted
		if ev.PrevKV == nil {
			return api.WatchEvent{}, false, fmt.Errorf("delete event of %s without its previous value", ev.KV.Key)
		}
		src = *ev.PrevKV
	case ev.Created():
		out.Type = api.EventAdded
	default:
		out.Type = api.EventModified
	}
	obj, err := decodeStored(k, src)
	if err != nil {
		return api.WatchEvent{}, false, err
	}
	out.Object, err = json.Marshal(obj)
	return out, err == nil, err
}

// handleWatch streams newline-delimited api.WatchEvent objects for every
// change after revision ?since= (exclusive; absent: from now). A revision
// that has been compacted answers 410 Gone: list again, then watch from the
// list's revision. ?kind= (repeatable) limits the stream to some kinds.
func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request) error {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return api.Invalid("since", "%q is not a revision (a non-negative integer)", v)
		}
		since = n
	}
	var kinds []api.Kind
	for _, v := range r.URL.Query()["kind"] {
		for p := range strings.SplitSeq(v, ",") {
			k := api.Kind(p)
			if api.NewObject(k) == nil {
				return api.Invalid("kind", "%q is not a resource kind", p)
			}
			kinds = append(kinds, k)
		}
	}
	from := int64(0)
	if since > 0 {
		from = since + 1
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ch := s.kv.Watch(ctx, objPrefix, from)

	// Learn about compaction before committing to a 200 answer.
	var first *store.WatchResponse
	select {
	case resp, ok := <-ch:
		if !ok {
			return fmt.Errorf("watch closed before it started")
		}
		if resp.Err != nil {
			if errors.Is(resp.Err, store.ErrCompacted) {
				return api.Gone("revision %d has been compacted; list again and watch from the list's revision", since)
			}
			return fmt.Errorf("watch: %w", resp.Err)
		}
		first = &resp
	case <-time.After(compactProbe):
	case <-ctx.Done():
		return ctx.Err()
	}

	s.metrics.watchClients.Inc()
	defer s.metrics.watchClients.Dec()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	enc := json.NewEncoder(w)
	send := func(resp store.WatchResponse) error {
		if resp.Err != nil {
			// The stream cannot go on; the client resumes from its last
			// revision (and gets 410 if that is gone).
			s.log.Warn("watch stream ended by the store", "err", resp.Err)
			return resp.Err
		}
		for _, ev := range resp.Events {
			we, ok, err := EventFromStore(ev)
			if err != nil {
				s.log.Warn("skip undecodable watch event", "key", ev.KV.Key, "err", err)
				continue
			}
			if !ok || (len(kinds) > 0 && !slices.Contains(kinds, we.Kind)) {
				continue
			}
			if err := enc.Encode(we); err != nil {
				return err
			}
		}
		flush()
		return nil
	}
	if first != nil {
		if err := send(*first); err != nil {
			return nil
		}
	}
	heartbeat := time.NewTicker(watchHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-heartbeat.C:
			if _, err := w.Write([]byte("\n")); err != nil {
				return nil
			}
			flush()
		case resp, ok := <-ch:
			if !ok {
				return nil
			}
			if err := send(resp); err != nil {
				return nil
			}
		}
	}
}
