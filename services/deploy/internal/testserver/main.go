// Command testserver is an MCP server (stdio, official Go SDK) whose
// behaviour a test controls through a JSON file named by
// PYLEE_TEST_CONTROL, read on every call: {"fail_rate": 0.5} fails that
// share of calls with a JSON-RPC error, {"slow_ms": 200} answers late,
// {"crash": true} exits at the next call, {"description": "…"} changes the
// echo tool's description (and announces the changed list);
// TEST_SERVER_EXTRA_TOOLS adds tools by name. It is built
// by the deploy service's tests and run through the command runtime.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type control struct {
	FailRate    float64 `json:"fail_rate"`
	SlowMS      int     `json:"slow_ms"`
	Crash       bool    `json:"crash"`
	Description string  `json:"description"`
}

func readControl() control {
	var c control
	if p := os.Getenv("PYLEE_TEST_CONTROL"); p != "" {
		if b, err := os.ReadFile(p); err == nil {
			_ = json.Unmarshal(b, &c)
		}
	}
	return c
}

func main() {
	version := os.Getenv("TEST_SERVER_VERSION")
	if version == "" {
		version = "0.0.0"
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "pylee-testserver", Version: version}, nil)
	// Standard error is what the deploy service keeps as the instance's log.
	fmt.Fprintf(os.Stderr, "testserver %s starting; API_KEY=%s\n", version, os.Getenv("API_KEY"))

	var mu sync.Mutex
	desc := "Echoes its text."
	echo := func() *mcp.Tool {
		return &mcp.Tool{Name: "echo", Description: desc, InputSchema: map[string]any{"type": "object",
			"properties": map[string]any{"text": map[string]any{"type": "string"}}}}
	}
	var handle mcp.ToolHandler
	handle = func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		c := readControl()
		if c.Crash {
			fmt.Fprintln(os.Stderr, "crashing as told")
			os.Exit(3)
		}
		if c.Description != "" {
			mu.Lock()
			if c.Description != desc {
				desc = c.Description
				s.AddTool(echo(), handle)
			}
			mu.Unlock()
		}
		if c.SlowMS > 0 {
			select {
			case <-time.After(time.Duration(c.SlowMS) * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if c.FailRate > 0 && rand.Float64() < c.FailRate { //nolint:gosec // a test server failing a share of calls, not a secret
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "failing as told"}
		}
		var args struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(req.Params.Arguments, &args)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: version + ":" + args.Text}}}, nil
	}
	s.AddTool(echo(), handle)
	s.AddTool(&mcp.Tool{Name: "env", Description: "Returns an environment variable.", InputSchema: map[string]any{"type": "object",
		"properties": map[string]any{"name": map[string]any{"type": "string"}}}},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var args struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal(req.Params.Arguments, &args)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: os.Getenv(args.Name)}}}, nil
		})
	s.AddTool(&mcp.Tool{Name: "pid", Description: "Returns its process id.", InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint(os.Getpid())}}}, nil
		})
	s.AddTool(&mcp.Tool{Name: "count", Description: "Counts to n, with progress.", InputSchema: map[string]any{"type": "object",
		"properties": map[string]any{"n": map[string]any{"type": "integer"}}}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			args := struct {
				N       int `json:"n"`
				DelayMS int `json:"delay_ms"` // between steps (default 20)
				Pad     int `json:"pad"`      // bytes of message per progress notification
			}{DelayMS: 20}
			_ = json.Unmarshal(req.Params.Arguments, &args)
			pad := strings.Repeat("x", min(max(args.Pad, 0), 1<<20))
			for i := 1; i <= args.N; i++ {
				if tok := req.Params.GetProgressToken(); tok != nil {
					_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i), Total: float64(args.N),
						Message: pad})
				}
				select {
				case <-time.After(time.Duration(args.DelayMS) * time.Millisecond):
				case <-ctx.Done():
					fmt.Fprintf(os.Stderr, "count cancelled at %d of %d\n", i, args.N)
					return nil, ctx.Err()
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint(args.N)}}}, nil
		})
	// TEST_SERVER_EXTRA_TOOLS adds tools by name (comma-separated), each
	// answering its own name: names a client must not see as they are.
	for _, name := range strings.Split(os.Getenv("TEST_SERVER_EXTRA_TOOLS"), ",") {
		if name == "" {
			continue
		}
		s.AddTool(&mcp.Tool{Name: name, Description: "An extra tool.", InputSchema: map[string]any{"type": "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "extra:" + name}}}, nil
			})
	}
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Printf("testserver: %v", err)
	}
}
