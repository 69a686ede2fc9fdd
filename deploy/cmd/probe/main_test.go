package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" {
			w.Write([]byte(`{"status":"ready"}`))
			return
		}
		http.Error(w, `{"error":{"code":"not_ready","message":"store down"}}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"ready", []string{srv.URL + "/ready"}, ""},
		{"503", []string{srv.URL + "/health"}, "503"},
		{"nothing listening", []string{"http://127.0.0.1:1/ready"}, "refused"},
		{"no url", nil, "usage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, func(string) string { return "" }, io.Discard)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("probe %v: %v, want error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
}
