package aip

import (
	"context"

	"github.com/pyleeai/pylee/kit/errs"
)

// Paging is a List RPC's pagination settings: its default and largest
// page size (AIP-158).
type Paging struct {
	Default, Max int
}

// Page is one List call's page: how many items it holds and where it
// resumes. Every List RPC goes through it:
//
//	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.x.v1.ListThings", req.GetParent(), filter))
//	rows, err := store.ListThings(ctx, parent, page.After, page.Limit())
//	rows, resp.NextPageToken = aip.Finish(ctx, page, rows, func(r Thing) string { return r.Name })
type Page struct {
	// Size is the number of items the page holds at most.
	Size int
	// After is the cursor the page resumes after; "" for the first page.
	After string

	tokens *PageTokens
	query  []byte
}

// PageRequest is what every AIP-158 List request has.
type PageRequest interface {
	GetPageSize() int32
	GetPageToken() string
}

// Start reads the page size and page token of req for query (the
// collection and every parameter that shapes the result but the paging).
// A token of another query or caller is refused naming `page_token`.
func (t *PageTokens) Start(ctx context.Context, paging Paging, req PageRequest, query []byte) (Page, error) {
	size, err := PageSize(req.GetPageSize(), paging.Default, paging.Max)
	if err != nil {
		return Page{}, errs.Field("page_size", "%v", err)
	}
	after, err := t.Decode(ctx, query, req.GetPageToken())
	if err != nil {
		return Page{}, errs.Field("page_token", "%v", err)
	}
	return Page{Size: size, After: after, tokens: t, query: query}, nil
}

// Limit is how many items to read: one more than the page holds tells
// whether another page follows.
func (p Page) Limit() int { return p.Size + 1 }

// Finish cuts rows (read with Limit) to the page and returns them with the
// token of the next page, "" on the last one; cursor gives an item's
// position (its name, or its key in the store's order).
func Finish[T any](ctx context.Context, p Page, rows []T, cursor func(T) string) ([]T, string) {
	if len(rows) <= p.Size {
		return rows, ""
	}
	rows = rows[:p.Size]
	return rows, p.tokens.Encode(ctx, p.query, cursor(rows[len(rows)-1]))
}

// Resume keeps the items of rows that follow the page's cursor, for a
// collection small enough to be read whole, in whatever order it is
// listed. A cursor no longer in rows (its item went since) ends the list.
func Resume[T any](p Page, rows []T, cursor func(T) string) []T {
	if p.After == "" {
		return rows
	}
	for i, r := range rows {
		if cursor(r) == p.After {
			return rows[i+1:]
		}
	}
	return nil
}
