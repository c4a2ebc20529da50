package aip_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/errs"
)

type pageReq struct {
	size  int32
	token string
}

func (r pageReq) GetPageSize() int32   { return r.size }
func (r pageReq) GetPageToken() string { return r.token }

// TestPages walks a collection page by page through Start, Resume and
// Finish, and refuses a token of another query and a negative size.
func TestPages(t *testing.T) {
	ctx := context.Background()
	tokens := aip.NewPageTokens([]byte("key"))
	paging := aip.Paging{Default: 2, Max: 3}
	var all []string
	for i := 0; i < 7; i++ {
		all = append(all, "item-"+strconv.Itoa(i))
	}
	id := func(s string) string { return s }
	query := aip.Query("test.List", "parent")
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("no end")
		}
		page, err := tokens.Start(ctx, paging, pageReq{size: 100, token: token}, query)
		if err != nil {
			t.Fatal(err)
		}
		if page.Size != 3 {
			t.Fatalf("size %d, want the max 3", page.Size)
		}
		var rows []string
		rows, token = aip.Finish(ctx, page, aip.Resume(page, all, id), id)
		got = append(got, rows...)
		if token == "" {
			break
		}
	}
	if len(got) != 7 || got[6] != "item-6" {
		t.Fatalf("walked %v", got)
	}
	page, _ := tokens.Start(ctx, paging, pageReq{}, query)
	_, next := aip.Finish(ctx, page, all, id)
	if _, err := tokens.Start(ctx, paging, pageReq{token: next}, aip.Query("test.List", "other")); !errors.Is(err, errs.ErrInvalidArgument) {
		t.Fatalf("a token of another query: %v", err)
	}
	if _, err := tokens.Start(ctx, paging, pageReq{size: -1}, query); !errors.Is(err, errs.ErrInvalidArgument) {
		t.Fatalf("a negative size: %v", err)
	}
}
