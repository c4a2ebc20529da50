package auth

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/pyleeai/pylee/kit/config"
)

// Cache remembers successful authentications for at most TTL, keyed by the
// credential's hash, so a hot path does not reach the token store on every
// call. A revoked credential stays valid for at most TTL: that is the stated
// staleness bound. Failures are not cached.
type Cache struct {
	next Authenticator
	ttl  time.Duration
	max  int
	now  func() time.Time

	mu      sync.Mutex
	entries map[[32]byte]cacheEntry
}

type cacheEntry struct {
	p       Principal
	expires time.Time
}

// NewCache wraps next with a cache of at most max entries, each kept ttl.
func NewCache(next Authenticator, ttl time.Duration, max int) *Cache {
	return &Cache{next: next, ttl: ttl, max: max, now: time.Now, entries: map[[32]byte]cacheEntry{}}
}

// Authenticate answers from the cache or asks the wrapped authenticator.
func (c *Cache) Authenticate(ctx context.Context, cred config.Secret) (Principal, error) {
	key := sha256.Sum256([]byte(cred.Reveal()))
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.p, nil
	}
	p, err := c.next.Authenticate(ctx, cred)
	if err != nil {
		return Principal{}, err
	}
	c.mu.Lock()
	if len(c.entries) >= c.max {
		// Drop expired entries; if still full, start over rather than grow.
		for k, v := range c.entries {
			if !now.Before(v.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			c.entries = map[[32]byte]cacheEntry{}
		}
	}
	c.entries[key] = cacheEntry{p: p, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return p, nil
}

// Purge forgets every cached answer, e.g. after a token is revoked.
func (c *Cache) Purge() {
	c.mu.Lock()
	c.entries = map[[32]byte]cacheEntry{}
	c.mu.Unlock()
}
