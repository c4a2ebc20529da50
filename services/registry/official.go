package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/frozen"
	"github.com/pyleeai/pylee/services/registry/internal/store"
)

// The official MCP Registry API (v0.1) is read far more than a registry
// changes, so it is served from memory: each registry's entries are
// rendered once into their JSON (a snapshot), and a request picks the
// rendered entries the caller may see and joins them. A version is
// immutable, so its server.json passes through as the bytes it was
// validated into.
//
// Freshness: every commit of this process's store marks the snapshots to
// be checked, so a read after an acknowledged write shows it; a change
// made by another replica of the registry service is seen within
// officialRecheck. A check compares the registry's stamp (its entry
// revision, its creation, the state of the organization's versions) and
// renders again only when it moved.
const (
	officialRecheck      = 500 * time.Millisecond
	officialDefaultLimit = 30
	officialMaxRegistry  = 1024   // snapshots kept; beyond, one is dropped
	officialMaxViews     = 10_000 // visible sets kept; beyond, all are
	officialMaxGzip      = 256    // gzip bodies kept; beyond, all are
	officialStatusMax    = 500    // bytes of a status message shown
)

// officialMetaKey is the official registry's block in a response's _meta.
const officialMetaKey = "io.modelcontextprotocol.registry/official"

// Messages of the official API's not-found answers; the gateway shows
// them as they are.
const (
	officialServerNotFound  = "Server not found"
	officialVersionNotFound = "Server version not found"
)

var officialStatusNames = map[string]string{statusActive: "active", statusDeprecated: "deprecated", statusYanked: "deleted"}

// officialItem is one entry as the official API shows it.
type officialItem struct {
	entry    store.Entry
	version  *store.Version // the pinned version; nil when it is gone
	status   string         // of the pinned version
	nameFold string         // the server name in lower case, for search
	body     []byte         // its ServerResponse; nil when the version is gone

	// The entry as ListEntries shows it, made on first use.
	basic, full atomic.Pointer[registryv1.Entry]
}

// proto returns the entry as ListEntries shows it (full: with its
// version's detail). The message is shared: nobody may change it.
func (it *officialItem) proto(full bool) (*registryv1.Entry, error) {
	p := &it.basic
	if full {
		p = &it.full
	}
	if e := p.Load(); e != nil {
		return e, nil
	}
	e, err := entryToProto(it.entry, it.version, full)
	if err != nil {
		return nil, err
	}
	// Shared and never changed: a gRPC reply sends it as encoded once.
	if err := frozen.Keep(e); err != nil {
		return nil, err
	}
	p.Store(e)
	return e, nil
}

// snapshot is a registry's entries, rendered, in name order.
type snapshot struct {
	id      uint64 // unique in the process: what kept pages are keyed by
	stamp   store.Stamp
	items   []officialItem
	byName  map[string]int // official server name -> index
	commits atomic.Uint64  // the process's commit count when last checked
	checked atomic.Int64   // unix nanoseconds of the last check
}

type snapshotSlot struct {
	build sync.Mutex // one check or build at a time
	cur   atomic.Pointer[snapshot]
}

// view is what one caller sees of a snapshot: every item (all) or the
// indexes listed.
type view struct {
	snap    *snapshot
	until   time.Time // the decisions it was made of may be this old
	all     bool
	visible []int
}

// officialCache holds the snapshots, the callers' views and gzip bodies.
type officialCache struct {
	commits atomic.Uint64 // bumped by every commit of the store

	mu    sync.Mutex
	slots map[string]*snapshotSlot

	viewsMu  sync.Mutex
	views    map[[2]string]view
	building singleflight.Group // of views

	gzMu    sync.Mutex
	gz      map[string][]byte // etag -> gzip body
	gzBytes int

	pagesMu   sync.Mutex
	pages     map[string]renderedPage
	pageBytes int
}

func newOfficialCache() *officialCache {
	return &officialCache{slots: map[string]*snapshotSlot{}, views: map[[2]string]view{}, gz: map[string][]byte{},
		pages: map[string]renderedPage{}}
}

func (c *officialCache) slot(registry string) *snapshotSlot {
	c.mu.Lock()
	defer c.mu.Unlock()
	sl, ok := c.slots[registry]
	if !ok {
		if len(c.slots) >= officialMaxRegistry {
			for k := range c.slots { // drop any one: it is rebuilt on use
				delete(c.slots, k)
				break
			}
		}
		sl = &snapshotSlot{}
		c.slots[registry] = sl
	}
	return sl
}

func (c *officialCache) drop(registry string) {
	c.mu.Lock()
	delete(c.slots, registry)
	c.mu.Unlock()
}

// fresh reports whether snap may be served without a check.
func (c *officialCache) fresh(snap *snapshot, now time.Time) bool {
	return snap != nil && snap.commits.Load() == c.commits.Load() && now.UnixNano()-snap.checked.Load() < int64(officialRecheck)
}

// snapshot returns registry's current snapshot, checking its stamp or
// rendering it when it may be stale.
func (s *Service) snapshot(ctx context.Context, registry string) (*snapshot, error) {
	c := s.official
	sl := c.slot(registry)
	now := time.Now()
	if snap := sl.cur.Load(); c.fresh(snap, now) {
		return snap, nil
	}
	sl.build.Lock()
	defer sl.build.Unlock()
	snap := sl.cur.Load()
	if c.fresh(snap, now) {
		return snap, nil // checked meanwhile
	}
	commits := c.commits.Load() // before reading: a later commit forces another check
	tx := s.store.Read()
	stamp, err := tx.RegistryStamp(ctx, registry)
	if err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			c.drop(registry)
		}
		return nil, err
	}
	if snap == nil || snap.stamp != stamp {
		if snap, err = renderSnapshot(ctx, tx, registry, stamp); err != nil {
			return nil, err
		}
	}
	snap.commits.Store(commits)
	snap.checked.Store(now.UnixNano())
	sl.cur.Store(snap)
	return snap, nil
}

// renderSnapshot reads registry's entries and their versions and renders
// each as the official API's ServerResponse.
func renderSnapshot(ctx context.Context, tx *store.Tx, registry string, stamp store.Stamp) (*snapshot, error) {
	rows, err := tx.Entries(ctx, store.EntryQuery{Registry: registry})
	if err != nil {
		return nil, err
	}
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.Server + "/versions/" + r.Version
	}
	vs, err := tx.VersionsByName(ctx, names)
	if err != nil {
		return nil, err
	}
	snap := &snapshot{id: snapshotIDs.Add(1), stamp: stamp, items: make([]officialItem, len(rows)), byName: make(map[string]int, len(rows))}
	for i, r := range rows {
		it := &snap.items[i]
		it.entry, it.nameFold = r, strings.ToLower(r.ServerName)
		if v, ok := vs[names[i]]; ok {
			it.version, it.status = &v, v.Status
			if it.body, err = renderServerResponse(r, v); err != nil {
				return nil, err
			}
		}
		snap.byName[r.ServerName] = i
	}
	return snap, nil
}

// snapshotIDs numbers snapshots.
var snapshotIDs atomic.Uint64

// serverResponse is the official ServerResponse.
type serverResponse struct {
	Server json.RawMessage `json:"server"`
	Meta   map[string]any  `json:"_meta"`
}

// renderServerResponse is an entry as the official API shows it: the
// pinned version's server.json, and the registry's metadata. In a Pylee
// registry the pinned version is the server's only, hence latest, version.
func renderServerResponse(e store.Entry, v store.Version) ([]byte, error) {
	meta := map[string]any{
		"status":          officialStatusNames[v.Status],
		"publishedAt":     v.CreateTime.UTC().Format(time.RFC3339Nano),
		"updatedAt":       e.UpdateTime.UTC().Format(time.RFC3339Nano),
		"statusChangedAt": v.UpdateTime.UTC().Format(time.RFC3339Nano),
		"isLatest":        true,
	}
	if m := v.StatusMessage; m != "" {
		if len(m) > officialStatusMax {
			m = m[:officialStatusMax]
			for !utf8.ValidString(m) { // cut at a character's start
				m = m[:len(m)-1]
			}
		}
		meta["statusMessage"] = m
	}
	b, err := json.Marshal(serverResponse{Server: v.ServerJSON, Meta: map[string]any{
		officialMetaKey: meta,
		"ai.pylee/entry": map[string]any{"name": e.Name, "versionRange": e.VersionRange, "revision": e.Revision,
			"digest": v.Digest},
	}})
	if err != nil {
		return nil, fmt.Errorf("render %q: %w", e.Name, err)
	}
	return b, nil
}

// viewerKey identifies what a caller may see: its name, the teams its
// credential names, and the organization it is limited to.
func viewerKey(p auth.Principal) string {
	return p.Name + "\x00" + strings.Join(p.Groups, "\x01") + "\x00" + p.Org
}

// view returns what the caller of ctx sees of registry's snapshot; the
// error is the registry's refusal when it sees nothing of it.
func (s *Service) view(ctx context.Context, registry string) (view, error) {
	v, parentErr, err := s.viewOf(ctx, registry)
	if err == nil && v.len() == 0 && !v.all {
		return view{}, parentErr
	}
	return v, err
}

// viewOf returns what the caller of ctx sees of registry's snapshot, and
// the refusal of the registry itself (nil when all of it is visible).
func (s *Service) viewOf(ctx context.Context, registry string) (view, error, error) {
	all, parentErr := s.allowed(ctx, "entries.get", registry)
	if !all && (!errs.Known(parentErr) || errors.Is(parentErr, errs.ErrNotFound)) {
		// Not a member of the organization: nothing of it is visible, not
		// even whether the registry exists.
		return view{}, parentErr, parentErr
	}
	snap, err := s.snapshot(ctx, registry)
	if err != nil {
		if all || !errors.Is(err, errs.ErrNotFound) {
			return view{}, parentErr, err
		}
		return view{}, parentErr, parentErr
	}
	if all {
		return view{snap: snap, all: true}, nil, nil
	}
	p, _ := auth.FromContext(ctx)
	key := [2]string{registry, viewerKey(p)}
	now := time.Now()
	c := s.official
	c.viewsMu.Lock()
	v, ok := c.views[key]
	c.viewsMu.Unlock()
	if !ok || v.snap != snap || now.After(v.until) {
		// One computation per caller and registry at a time: the callers
		// that arrive meanwhile wait for it instead of each asking for
		// every entry's decision.
		res, err, _ := c.building.Do(key[0]+"\x00"+key[1], func() (any, error) {
			c.viewsMu.Lock()
			v, ok := c.views[key]
			c.viewsMu.Unlock()
			if ok && v.snap == snap && time.Now().Before(v.until) {
				return v, nil // made while this caller waited
			}
			v = view{snap: snap, until: time.Now().Add(visibleTTL)}
			names := make([]string, len(snap.items))
			for i := range snap.items {
				names[i] = snap.items[i].entry.Name
			}
			answers, err := auth.AuthorizeMany(ctx, s.authz, p, "entries.get", names)
			if err != nil {
				return nil, err
			}
			for i, err := range answers {
				switch {
				case err == nil:
					v.visible = append(v.visible, i)
				case !errs.Known(err):
					return nil, err
				}
			}
			c.viewsMu.Lock()
			if len(c.views) >= officialMaxViews {
				c.views = map[[2]string]view{}
			}
			c.views[key] = v
			c.viewsMu.Unlock()
			return v, nil
		})
		if err != nil {
			return view{}, parentErr, err
		}
		v = res.(view)
	}
	return v, parentErr, nil
}

// visibleTTL bounds how long a caller's visible set is reused: no longer
// than the access decisions it was made of are cached.
const visibleTTL = 2 * time.Second

// len is the number of items the view holds.
func (v view) len() int {
	if v.all {
		return len(v.snap.items)
	}
	return len(v.visible)
}

// at is the view's i-th item.
func (v view) at(i int) *officialItem {
	if v.all {
		return &v.snap.items[i]
	}
	return &v.snap.items[v.visible[i]]
}

// start is the position of the first item after name.
func (v view) start(name string) int {
	return sort.Search(v.len(), func(i int) bool { return v.at(i).entry.Name > name })
}

// RenderOfficial implements RegistryService.
func (s *Service) RenderOfficial(ctx context.Context, req *registryv1.RenderOfficialRequest) (*registryv1.RenderOfficialResponse, error) {
	v, err := s.view(ctx, req.GetParent())
	if err != nil {
		return nil, err
	}
	// The same page for the same caller and snapshot is the same bytes:
	// kept, with its ETag, while the snapshot and the caller's view last.
	p, _ := auth.FromContext(ctx)
	key := pageKey(v, viewerKey(p), req)
	page, ok := s.official.page(key)
	if !ok {
		if req.GetServerName() != "" {
			if page.body, err = officialVersions(v, req.GetServerName(), req.GetVersion()); err != nil {
				return nil, err
			}
		} else if page.body, err = s.officialList(ctx, v, req); err != nil {
			return nil, err
		}
		sum := xxhash.Sum64(page.body)
		var tag [8]byte
		for i := range tag {
			tag[i] = byte(sum >> (56 - 8*i))
		}
		page.etag = `"` + hex.EncodeToString(tag[:]) + `"`
		s.official.keepPage(key, page)
	}
	body, etag := page.body, page.etag
	out := &registryv1.RenderOfficialResponse{Etag: etag}
	if etagListed(req.GetIfNoneMatch(), etag) {
		out.NotModified = true
		return out, nil
	}
	if req.GetAcceptGzip() {
		out.Body, out.ContentEncoding = s.official.gzipped(etag, body), "gzip"
		return out, nil
	}
	out.Body = body
	return out, nil
}

// renderedPage is an answer of RenderOfficial, kept.
type renderedPage struct {
	body []byte
	etag string
}

// officialMaxPageBytes and officialMaxGzipBytes bound the kept pages and
// gzip bodies, keys included; beyond, all are dropped.
const (
	officialMaxPageBytes = 32 << 20
	officialMaxGzipBytes = 16 << 20
)

// pageKey identifies an answer: the snapshot and view it is cut from (a
// view is remade when its decisions may be stale), the caller (a page's
// cursor is sealed for it), and every parameter of the request that
// shapes the body.
func pageKey(v view, viewer string, req *registryv1.RenderOfficialRequest) string {
	var since string
	if ts := req.GetUpdatedSince(); ts != nil {
		since = ts.AsTime().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%d\x00%d\x00%s\x00%s\x00%s\x00%d\x00%s\x00%s\x00%s\x00%t\x00%s", v.snap.id, v.until.UnixNano(), viewer,
		req.GetServerName(), req.GetVersion(), req.GetLimit(), req.GetCursor(), req.GetSearch(), since, req.GetIncludeDeleted(),
		req.GetVersionFilter())
}

func (c *officialCache) page(key string) (renderedPage, bool) {
	c.pagesMu.Lock()
	defer c.pagesMu.Unlock()
	p, ok := c.pages[key]
	return p, ok
}

func (c *officialCache) keepPage(key string, p renderedPage) {
	c.pagesMu.Lock()
	defer c.pagesMu.Unlock()
	size := len(key) + len(p.body) + len(p.etag) + 64 // the map's own share, roughly
	if c.pageBytes+size > officialMaxPageBytes {
		c.pages, c.pageBytes = map[string]renderedPage{}, 0
	}
	c.pages[key] = p
	c.pageBytes += size
}

// officialList renders a page of the list of servers.
func (s *Service) officialList(ctx context.Context, v view, req *registryv1.RenderOfficialRequest) ([]byte, error) {
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = officialDefaultLimit
	}
	var since time.Time
	includeDeleted := req.GetIncludeDeleted()
	if ts := req.GetUpdatedSince(); ts != nil {
		since = ts.AsTime()
		includeDeleted = true
	}
	// In a registry each server has one version, the pinned one: it is
	// the latest, so version=latest selects everything.
	version := req.GetVersionFilter()
	if version == "latest" {
		version = ""
	}
	search := strings.ToLower(req.GetSearch())
	query := aip.Query("pylee.registry.v1.RenderOfficial", req.GetParent(), search, since.Format(time.RFC3339Nano),
		strconv.FormatBool(includeDeleted), version)
	after, err := s.tokens.Decode(ctx, query, req.GetCursor())
	if err != nil {
		return nil, errs.Field("cursor", "%v", err)
	}
	page := make([]*officialItem, 0, limit+1)
	for i, n := v.start(after), v.len(); i < n && len(page) <= limit; i++ {
		it := v.at(i)
		switch {
		case it.body == nil,
			!includeDeleted && it.status == statusYanked,
			search != "" && !strings.Contains(it.nameFold, search),
			version != "" && it.entry.Version != version,
			!since.IsZero() && it.entry.UpdateTime.Before(since):
			continue
		}
		page = append(page, it)
	}
	next := ""
	if len(page) > limit {
		page = page[:limit]
		next = s.tokens.Encode(ctx, query, page[limit-1].entry.Name)
	}
	size := 64 + len(next)
	for _, it := range page {
		size += len(it.body) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, `{"servers":[`...)
	for i, it := range page {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it.body...)
	}
	b = append(b, `],"metadata":{`...)
	if next != "" {
		b = append(b, `"nextCursor":"`...)
		b = append(b, next...) // base64url: nothing to escape
		b = append(b, `",`...)
	}
	b = append(b, `"count":`...)
	b = strconv.AppendInt(b, int64(len(page)), 10)
	return append(b, "}}\n"...), nil
}

// officialVersions renders /servers/{name}/versions (version empty) or
// /servers/{name}/versions/{version}.
func officialVersions(v view, serverName, version string) ([]byte, error) {
	i, ok := v.snap.byName[serverName]
	var it *officialItem
	if ok {
		it = &v.snap.items[i]
		if !v.all {
			k := sort.SearchInts(v.visible, i)
			ok = k < len(v.visible) && v.visible[k] == i
		}
	}
	if !ok || it.body == nil || (version != "" && version != "latest" && it.entry.Version != version) {
		if version != "" {
			return nil, status.Error(codes.NotFound, officialVersionNotFound)
		}
		return nil, status.Error(codes.NotFound, officialServerNotFound)
	}
	if version != "" {
		return append(append(make([]byte, 0, len(it.body)+1), it.body...), '\n'), nil
	}
	b := make([]byte, 0, len(it.body)+48)
	b = append(b, `{"servers":[`...)
	b = append(b, it.body...)
	return append(b, `],"metadata":{"count":1}}`+"\n"...), nil
}

// etagListed reports whether an If-None-Match header value names etag.
func etagListed(header, etag string) bool {
	for header != "" {
		var tag string
		tag, header, _ = strings.Cut(header, ",")
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			return true
		}
	}
	return false
}

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// gzipped returns body compressed, once per etag.
func (c *officialCache) gzipped(etag string, body []byte) []byte {
	c.gzMu.Lock()
	z, ok := c.gz[etag]
	c.gzMu.Unlock()
	if ok {
		return z
	}
	var buf bytes.Buffer
	w := gzipWriters.Get().(*gzip.Writer)
	w.Reset(&buf)
	_, _ = w.Write(body) // a bytes.Buffer takes every write
	_ = w.Close()
	gzipWriters.Put(w)
	z = buf.Bytes()
	c.gzMu.Lock()
	if len(c.gz) >= officialMaxGzip || c.gzBytes+len(z) > officialMaxGzipBytes {
		c.gz, c.gzBytes = map[string][]byte{}, 0
	}
	c.gz[etag] = z
	c.gzBytes += len(z)
	c.gzMu.Unlock()
	return z
}
