// ttrpc-peer: a Go ttrpc server, checking client and benchmark client, built against Debian's
// containerd/ttrpc 1.1 (default) or trixie's 1.2 (-tags ttrpc12), to test ttrpc-ts against.
// Messages are google.protobuf.BytesValue (gogo's in 1.1, APIv2's in 1.2: same wire bytes).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const service = "interop.v1.Peer"

func main() {
	mode := flag.String("mode", "server", "server | client | bench")
	sock := flag.String("socket", "", "unix socket path")
	conc := flag.Int("concurrency", 1, "bench: concurrent callers")
	size := flag.Int("size", 64, "bench: payload bytes")
	dur := flag.Duration("duration", 2*time.Second, "bench: how long")
	warm := flag.Duration("warmup", 0, "bench: calls before measuring")
	flag.Parse()
	if *sock == "" {
		fmt.Fprintln(os.Stderr, "ttrpc-peer: -socket is required")
		os.Exit(2)
	}
	switch *mode {
	case "server":
		serve(*sock)
	case "client":
		check(*sock)
	case "bench":
		bench(*sock, *conc, *size, *warm, *dur)
	default:
		fmt.Fprintf(os.Stderr, "ttrpc-peer: unknown -mode %q\n", *mode)
		os.Exit(2)
	}
}

func bytesOf(unmarshal func(interface{}) error) ([]byte, error) {
	m := newMsg(nil)
	if err := unmarshal(m); err != nil {
		return nil, err
	}
	return m.Value, nil
}

func serve(path string) {
	s, err := ttrpc.NewServer()
	if err != nil {
		panic(err)
	}
	s.Register(service, map[string]ttrpc.Method{
		"Echo": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			b, err := bytesOf(u)
			return newMsg(b), err
		},
		"Meta": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			md, _ := ttrpc.GetMetadata(ctx)
			j, _ := json.Marshal(md)
			return newMsg(j), nil
		},
		"Deadline": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			dl, ok := ctx.Deadline()
			if !ok {
				return newMsg([]byte("none")), nil
			}
			return newMsg([]byte(strconv.FormatInt(time.Until(dl).Milliseconds(), 10))), nil
		},
		"Sleep": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			b, err := bytesOf(u)
			if err != nil {
				return nil, err
			}
			ms, _ := strconv.Atoi(string(b))
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return newMsg([]byte("slept")), nil
			case <-ctx.Done():
				return nil, status.Errorf(codes.DeadlineExceeded, "sleep cut short: %v", ctx.Err())
			}
		},
		"Fail": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			b, err := bytesOf(u)
			if err != nil {
				return nil, err
			}
			parts := strings.SplitN(string(b), ":", 2)
			code, _ := strconv.Atoi(parts[0])
			return nil, failStatus(codes.Code(code), parts[1])
		},
		"Big": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			b, err := bytesOf(u)
			if err != nil {
				return nil, err
			}
			n, _ := strconv.Atoi(string(b))
			return newMsg(make([]byte, n)), nil
		},
	})
	registerStreams(s)
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		panic(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		s.Close()
		os.Exit(0)
	}()
	fmt.Println("ready", version)
	if err := s.Serve(context.Background(), l); err != nil && err != ttrpc.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}

// Result of one check, as the TS test reads it.
type Result struct {
	Value   string   `json:"value,omitempty"`
	Len     int      `json:"len,omitempty"`
	Code    int      `json:"code"`
	Msg     string   `json:"msg,omitempty"`
	Details []string `json:"details,omitempty"`
	Err     string   `json:"err,omitempty"`
	Ok      int      `json:"ok,omitempty"`
}

func resultOf(m *msg, err error) Result {
	if err != nil {
		st, _ := status.FromError(err)
		r := Result{Code: int(st.Code()), Msg: st.Message(), Err: err.Error()}
		for _, d := range st.Proto().GetDetails() {
			r.Details = append(r.Details, d.GetTypeUrl()+"="+string(d.GetValue()))
		}
		return r
	}
	return Result{Value: string(m.Value), Len: len(m.Value)}
}

func dial(path string) *ttrpc.Client {
	conn, err := net.Dial("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	return ttrpc.NewClient(conn)
}

func call(c *ttrpc.Client, ctx context.Context, svc, method string, in []byte) Result {
	out := newMsg(nil)
	err := c.Call(ctx, svc, method, newMsg(in), out)
	return resultOf(out, err)
}

func check(path string) {
	c := dial(path)
	defer c.Close()
	bg := context.Background()
	res := map[string]Result{}
	res["echo"] = call(c, bg, service, "Echo", []byte("hello from go"))
	res["empty"] = call(c, bg, service, "Echo", nil)
	md := ttrpc.MD{}
	md.Set("containerd-namespace-ttrpc", "k8s.io")
	md.Append("multi", "a", "b")
	res["meta"] = call(c, ttrpc.WithMetadata(bg, md), service, "Meta", nil)
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	res["deadline"] = call(c, ctx, service, "Deadline", nil)
	cancel()
	res["nodeadline"] = call(c, bg, service, "Deadline", nil)
	ctx, cancel = context.WithTimeout(bg, 100*time.Millisecond)
	res["expired"] = call(c, ctx, service, "Sleep", []byte("2000"))
	cancel()
	res["fail"] = call(c, bg, service, "Fail", []byte("5:container x: not found"))
	res["unknown"] = call(c, bg, service, "Throw", nil)
	res["noservice"] = call(c, bg, "no.Such", "X", nil)
	res["nomethod"] = call(c, bg, service, "Nope", nil)

	var ok int64
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			want := fmt.Sprintf("call-%d", i)
			r := call(c, bg, service, "Echo", []byte(want))
			if r.Value == want {
				atomic.AddInt64(&ok, 1)
			}
		}(i)
	}
	wg.Wait()
	res["concurrent"] = Result{Ok: int(ok)}

	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i % 251)
	}
	r := call(c, bg, service, "Echo", big)
	if r.Value == string(big) {
		r.Value = "same"
	} else {
		r.Value = "different"
	}
	res["big"] = r
	r = call(c, bg, service, "Echo", make([]byte, 5<<20))
	r.Value = ""
	res["oversize"] = r
	res["oversize-response"] = call(c, bg, service, "Big", []byte(strconv.Itoa(5<<20)))
	streamChecks(c, res)
	res["after"] = call(c, bg, service, "Echo", []byte("still here"))
	j, _ := json.Marshal(res)
	fmt.Println(string(j))
}

func bench(path string, conc, size int, warm, dur time.Duration) {
	c := dial(path)
	defer c.Close()
	payload := make([]byte, size)
	loop := func(d time.Duration) (int64, float64) {
		var calls int64
		stop := time.Now().Add(d)
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < conc; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out := newMsg(nil)
				for time.Now().Before(stop) {
					if err := c.Call(context.Background(), service, "Echo", newMsg(payload), out); err != nil {
						fmt.Fprintln(os.Stderr, "bench call:", err)
						os.Exit(1)
					}
					atomic.AddInt64(&calls, 1)
				}
			}()
		}
		wg.Wait()
		return calls, time.Since(start).Seconds()
	}
	if warm > 0 {
		loop(warm)
	}
	calls, secs := loop(dur)
	j, _ := json.Marshal(map[string]interface{}{"calls": calls, "seconds": secs})
	fmt.Println(string(j))
}
