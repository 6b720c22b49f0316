package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"
)

// backoff is a capped exponential backoff with jitter.
type backoff struct {
	base, max time.Duration
}

// retryBackoff paces retries of controller calls.
var retryBackoff = backoff{base: 200 * time.Millisecond, max: 30 * time.Second}

// delay is the wait before retry number attempt (0-based): base·2^attempt
// capped at max, of which a random half is taken away ("equal jitter"),
// so that agents restarted together do not retry in step.
func (b backoff) delay(attempt int) time.Duration {
	d := b.max
	if attempt < 30 {
		if x := b.base << attempt; x > 0 && x < b.max {
			d = x
		}
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// sleepCtx waits d or until ctx ends; it reports whether the wait was full.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// portName is the controller name of a container's port:
// "<container-id>-<ifname>" with the characters a name may not hold
// (':', '/', spaces, control characters) replaced by '_', and shortened
// with a hash when longer than a name may be.
func portName(containerID, ifName string) string {
	s := containerID + "-" + ifName
	var b strings.Builder
	for _, r := range s {
		if r < 0x21 || r == 0x7f || r == ':' || r == '/' {
			r = '_'
		}
		b.WriteRune(r)
	}
	s = b.String()
	const limit = 253
	if len(s) > limit {
		sum := sha256.Sum256([]byte(containerID + "\x00" + ifName))
		suffix := "-" + hex.EncodeToString(sum[:8])
		cut := limit - len(suffix)
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + suffix
	}
	return s
}
