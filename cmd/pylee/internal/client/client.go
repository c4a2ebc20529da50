// Package client is the CLI's client of Pylee's REST API.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // resolves error details
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/pyleeai/pylee/kit/config"
)

// Client calls the REST API at a base URL with a bearer token.
type Client struct {
	base  string
	token config.Secret
	http  *http.Client
}

// Token is the credential the client sends.
func (c *Client) Token() config.Secret { return c.token }

// New returns a client of the API at baseURL (e.g. http://localhost:8080).
func New(baseURL string, token config.Secret) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--api-url %q must be an http(s) URL such as http://localhost:8080", baseURL)
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// APIError is an error answer of the API.
type APIError struct {
	HTTPStatus int
	Code       codes.Code
	Message    string
	Status     *spb.Status
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s", codeName(e.Code), e.Message)
}

func codeName(c codes.Code) string {
	// codes.Code's String is CamelCase ("NotFound"); print the canonical
	// upper-case names users see in docs and the ErrorInfo.
	names := map[codes.Code]string{
		codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
		codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
		codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
		codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE",
		codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE",
		codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
	}
	if n, ok := names[c]; ok {
		return n
	}
	return c.String()
}

// Do sends method path?query with body (if not nil) as JSON and decodes the
// answer into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out proto.Message) error {
	var rd io.Reader
	if body != nil {
		b, err := protojson.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if !c.token.IsZero() {
		req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the Pylee API at %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

func decodeError(httpStatus int, raw []byte) error {
	st := &spb.Status{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, st); err != nil || st.Message == "" {
		msg := strings.TrimSpace(string(raw))
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if msg == "" {
			msg = http.StatusText(httpStatus)
		}
		return &APIError{HTTPStatus: httpStatus, Code: codes.Unknown, Message: fmt.Sprintf("HTTP %d: %s", httpStatus, msg)}
	}
	return &APIError{HTTPStatus: httpStatus, Code: codes.Code(st.Code), Message: st.Message, Status: st}
}

func unwrapURLError(err error) error {
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Download GETs path?query and copies a successful body to w, returning the
// bytes written.
func (c *Client) Download(ctx context.Context, path string, query url.Values, w io.Writer) (int64, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	if !c.token.IsZero() {
		req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	}
	// Downloads may be long: no overall timeout, only the caller's context.
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach the Pylee API at %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return 0, decodeError(resp.StatusCode, raw)
	}
	return io.Copy(w, resp.Body)
}
