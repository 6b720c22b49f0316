package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

const leasePrefix = keyPrefix + "leases/"

// AcquireLease takes or renews the named lease for req.Holder. It succeeds
// when the lease is free, expired, or already held by req.Holder; it
// answers a conflict naming the holder otherwise. Every decision is one
// compare-and-swap, so two replicas never both hold a lease.
func (r *Registry) AcquireLease(ctx context.Context, name string, req api.LeaseRequest) (api.Lease, error) {
	if err := api.ValidName(name); err != nil {
		return api.Lease{}, api.Invalid("name", "lease name %v", err)
	}
	if req.Holder == "" {
		return api.Lease{}, api.Invalid("holder", "is required")
	}
	if req.TTLSeconds < 1 || req.TTLSeconds > 3600 {
		return api.Lease{}, api.Invalid("ttl_seconds", "%d is out of range (1-3600)", req.TTLSeconds)
	}
	key := leasePrefix + name
	for range txnRetries {
		now := r.now().UTC()
		l := api.Lease{Name: name, Holder: req.Holder, TTLSeconds: req.TTLSeconds, AcquiredAt: now, RenewedAt: now}
		cmp := store.Absent(key)
		kv, err := r.kv.Get(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return api.Lease{}, fmt.Errorf("read lease %s: %w", name, err)
		default:
			var cur api.Lease
			if err := json.Unmarshal(kv.Value, &cur); err != nil {
				return api.Lease{}, fmt.Errorf("decode lease %s: %w", name, err)
			}
			expired := now.After(cur.RenewedAt.Add(time.Duration(cur.TTLSeconds) * time.Second))
			if cur.Holder != req.Holder && !expired {
				return cur, api.Conflict("holder", "lease %s is held by %s until %s", name, cur.Holder, cur.RenewedAt.Add(time.Duration(cur.TTLSeconds)*time.Second).Format(time.RFC3339Nano))
			}
			if cur.Holder == req.Holder && !expired {
				l.AcquiredAt = cur.AcquiredAt
				l.Transitions = cur.Transitions
			} else {
				l.Transitions = cur.Transitions + 1
			}
			cmp = store.Unchanged(kv)
		}
		val, err := json.Marshal(l)
		if err != nil {
			return api.Lease{}, err
		}
		if _, err := r.kv.Txn(ctx, []store.Cmp{cmp}, []store.Op{store.Put(key, val)}); err != nil {
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			return api.Lease{}, fmt.Errorf("write lease %s: %w", name, err)
		}
		return l, nil
	}
	return api.Lease{}, api.Conflict("", "lease %s: too much contention, try again", name)
}

// ReleaseLease gives the lease up if holder holds it; otherwise nothing
// happens.
func (r *Registry) ReleaseLease(ctx context.Context, name, holder string) error {
	key := leasePrefix + name
	kv, err := r.kv.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read lease %s: %w", name, err)
	}
	var cur api.Lease
	if err := json.Unmarshal(kv.Value, &cur); err != nil {
		return fmt.Errorf("decode lease %s: %w", name, err)
	}
	if cur.Holder != holder {
		return nil
	}
	if _, err := r.kv.Txn(ctx, []store.Cmp{store.Unchanged(kv)}, []store.Op{store.Delete(key)}); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// GetLease returns the lease as stored (expired or not).
func (r *Registry) GetLease(ctx context.Context, name string) (api.Lease, error) {
	kv, err := r.kv.Get(ctx, leasePrefix+name)
	if errors.Is(err, store.ErrNotFound) {
		return api.Lease{}, api.NotFound("lease %s is not held", name)
	}
	if err != nil {
		return api.Lease{}, fmt.Errorf("read lease %s: %w", name, err)
	}
	var l api.Lease
	if err := json.Unmarshal(kv.Value, &l); err != nil {
		return api.Lease{}, fmt.Errorf("decode lease %s: %w", name, err)
	}
	return l, nil
}

func (s *Server) handleAcquireLease(w http.ResponseWriter, r *http.Request) error {
	var req api.LeaseRequest
	if err := s.decode(r, &req); err != nil {
		return err
	}
	l, err := s.reg.AcquireLease(r.Context(), r.PathValue("name"), req)
	if err != nil {
		if errors.Is(err, api.ErrConflict) && l.Holder != "" {
			// The current holder travels with the refusal.
			writeJSON(w, http.StatusConflict, struct {
				*api.Error
				Lease api.Lease `json:"lease"`
			}{err.(*api.Error), l})
			return nil
		}
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) handleGetLease(w http.ResponseWriter, r *http.Request) error {
	l, err := s.reg.GetLease(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) handleReleaseLease(w http.ResponseWriter, r *http.Request) error {
	holder := r.URL.Query().Get("holder")
	if holder == "" {
		return api.Invalid("holder", "is required (?holder=)")
	}
	if err := s.reg.ReleaseLease(r.Context(), r.PathValue("name"), holder); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
