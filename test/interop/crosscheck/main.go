// crosscheck encodes and decodes containerd's own Go message types (Debian's containerd 1.6
// sources, GOPATH mode) so that the TypeScript test can compare our generated code with them
// field for field.
//
//	crosscheck encode        prints {"name": "<base64>", ...}
//	crosscheck decode        reads the same shape on stdin, prints the decoded messages as JSON
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	ttrpcevents "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	runtimeoptions "github.com/containerd/containerd/pkg/runtimeoptions/v1"
	"github.com/containerd/containerd/runtime/v2/task"
	cg1 "github.com/containerd/cgroups/stats/v1"
	cg2 "github.com/containerd/cgroups/v2/stats"
	ptypes "github.com/gogo/protobuf/types"
)

type message interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "crosscheck:", err)
		os.Exit(1)
	}
}

func marshal(m message) string {
	b, err := m.Marshal()
	must(err)
	return base64.StdEncoding.EncodeToString(b)
}

// fixtures are the messages Go encodes; the TypeScript test holds the same values.
func fixtures() map[string]message {
	opts := &runtimeoptions.Options{TypeUrl: "io.containerd.kata-ts.v2", ConfigPath: "/etc/kata-containers/configuration.toml"}
	optBytes, err := opts.Marshal()
	must(err)
	exitedAt := time.Unix(1700000000, 123456789).UTC()
	exit := &eventsapi.TaskExit{ContainerID: "c1", ID: "exec-1", Pid: 4242, ExitStatus: 137, ExitedAt: exitedAt}
	exitBytes, err := exit.Marshal()
	must(err)
	return map[string]message{
		"createTask": &task.CreateTaskRequest{
			ID:       "c1",
			Bundle:   "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1",
			Rootfs: []*types.Mount{
				{Type: "overlay", Source: "overlay", Options: []string{"index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2"}},
				{Type: "bind", Source: "/src", Target: "/dst", Options: []string{"rbind", "ro"}},
			},
			Terminal: true,
			Stdin:    "/fifo/stdin",
			Stdout:   "/fifo/stdout",
			Stderr:   "/fifo/stderr",
			Options:  &ptypes.Any{TypeUrl: "runtimeoptions.v1.Options", Value: optBytes},
		},
		"forward": &ttrpcevents.ForwardRequest{Envelope: &ttrpcevents.Envelope{
			Timestamp: time.Unix(1700000001, 5000).UTC(),
			Namespace: "k8s.io",
			Topic:     "/tasks/exit",
			Event:     &ptypes.Any{TypeUrl: "containerd.events.TaskExit", Value: exitBytes},
		}},
		"taskExit":       exit,
		"deleteResponse": &task.DeleteResponse{Pid: 4242, ExitStatus: 137, ExitedAt: exitedAt},
		"metricsV1": &cg1.Metrics{
			Pids:   &cg1.PidsStat{Current: 3, Limit: 100},
			CPU:    &cg1.CPUStat{Usage: &cg1.CPUUsage{Total: 1 << 40, Kernel: 2, User: 3, PerCPU: []uint64{5, 6}}},
			Memory: &cg1.MemoryStat{Cache: 7, RSS: 8, TotalInactiveFile: 9, Usage: &cg1.MemoryEntry{Limit: 1 << 33, Usage: 10, Max: 11, Failcnt: 12}},
		},
		"metricsV2": &cg2.Metrics{
			Pids:   &cg2.PidsStat{Current: 3, Limit: 100},
			CPU:    &cg2.CPUStat{UsageUsec: 1 << 40, UserUsec: 2, SystemUsec: 3},
			Memory: &cg2.MemoryStat{Anon: 4, File: 5, InactiveFile: 6, Usage: 7, UsageLimit: 1 << 33, SwapUsage: 8},
		},
	}
}

func empty(name string) message {
	switch name {
	case "createTask":
		return &task.CreateTaskRequest{}
	case "forward":
		return &ttrpcevents.ForwardRequest{}
	case "taskExit":
		return &eventsapi.TaskExit{}
	case "deleteResponse":
		return &task.DeleteResponse{}
	case "metricsV1":
		return &cg1.Metrics{}
	case "metricsV2":
		return &cg2.Metrics{}
	case "runtimeOptions":
		return &runtimeoptions.Options{}
	}
	must(fmt.Errorf("unknown message %q", name))
	return nil
}

func main() {
	if len(os.Args) != 2 {
		must(fmt.Errorf("usage: crosscheck encode|decode"))
	}
	switch os.Args[1] {
	case "encode":
		out := map[string]string{}
		for name, m := range fixtures() {
			out[name] = marshal(m)
		}
		must(json.NewEncoder(os.Stdout).Encode(out))
	case "decode":
		var in map[string]string
		must(json.NewDecoder(os.Stdin).Decode(&in))
		out := map[string]interface{}{}
		for name, b64 := range in {
			b, err := base64.StdEncoding.DecodeString(b64)
			must(err)
			m := empty(name)
			must(m.Unmarshal(b))
			out[name] = m
		}
		must(json.NewEncoder(os.Stdout).Encode(out))
	default:
		must(fmt.Errorf("unknown action %q", os.Args[1]))
	}
}
