package mesosmanager

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/weft-sdn/weft/internal/marathon"
)

// EventTypes are the Marathon event types the manager subscribes to: the
// set §5 of the reference recommends plus
// unknown_instance_terminated_event, which releases an instance Marathon
// did not know.
var EventTypes = append(slices.Clone(marathon.DefaultEventTypes), marathon.EventUnknownInstanceTerminated)

// marathonSource is the MarathonSource over package marathon's client.
type marathonSource struct {
	c *marathon.Client
}

// NewMarathonSource returns the MarathonSource of a Marathon cluster: the
// REST client (with failover between the URLs and credentials that survive
// the leader redirect) and its event stream with reconnects.
func NewMarathonSource(cfg Config, log *slog.Logger) (MarathonSource, error) {
	c, err := marathon.NewClient(marathon.Config{
		URLs:     cfg.Marathon,
		Username: cfg.MarathonUser,
		Password: cfg.MarathonPassword,
		Token:    cfg.MarathonToken,
		Logger:   log,
	})
	if err != nil {
		return nil, fmt.Errorf("marathon source: %w", err)
	}
	return &marathonSource{c: c}, nil
}

func (s *marathonSource) Snapshot(ctx context.Context) (*marathon.Snapshot, error) {
	return s.c.Snapshot(ctx)
}

func (s *marathonSource) App(ctx context.Context, id string) (*marathon.App, error) {
	return s.c.App(ctx, id)
}

func (s *marathonSource) PodStatus(ctx context.Context, id string) (*marathon.PodStatus, error) {
	return s.c.PodStatus(ctx, id)
}

func (s *marathonSource) Events(ctx context.Context) (<-chan marathon.Event, error) {
	st, err := s.c.Subscribe(ctx, marathon.StreamConfig{EventTypes: EventTypes})
	if err != nil {
		return nil, fmt.Errorf("subscribe to marathon events: %w", err)
	}
	return st.Events(), nil
}
