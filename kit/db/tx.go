package db

import (
	"context"
	"fmt"
	"sync"
)

// Tx is a transaction of any ent client (each service generates its own).
type Tx interface {
	Commit() error
	Rollback() error
}

// RunTx runs fn in a transaction that begin opens: committed when fn
// returns nil, rolled back otherwise (and when it panics). The unit of
// work of every store: a change and its audit event (kit/outbox) commit
// together or not at all.
func RunTx[T Tx](ctx context.Context, begin func(context.Context) (T, error), fn func(T) error) (err error) {
	tx, err := begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if v := recover(); v != nil {
			_ = tx.Rollback()
			panic(v)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Committed runs hooks after a store's commits: the audit relay is woken
// by the commit that wrote an event, not by each caller remembering to.
type Committed struct {
	mu    sync.Mutex
	hooks []func()
}

// Add registers fn to run after every commit of a change.
func (c *Committed) Add(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks = append(c.hooks, fn)
}

// Run runs the hooks; a store calls it after each commit of a change.
func (c *Committed) Run() {
	c.mu.Lock()
	hooks := c.hooks
	c.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}
