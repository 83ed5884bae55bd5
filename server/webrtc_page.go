package server

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// The browser page: plain HTML, JS and CSS embedded in the binary, so that a fresh server
// serves it with no build step and no files beside it. It talks to the server only through
// public endpoints (WHIP at /v1/whip and the data channel's JSON), like any other client.
//
//go:embed web
var webFiles embed.FS

// Routes of the page.
const (
	routePage   = "/"
	routeAssets = "/web/"
)

// page serves the page at exactly "/" (other unknown paths stay 404) and its assets under
// /web/. The assets change with the binary, so caches must revalidate.
func (s *Server) page() http.Handler {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil { // the embedded tree always has web/
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			(&apiError{status: http.StatusMethodNotAllowed, typ: typeInvalidRequest, msg: r.Method + " " + r.URL.Path + " is not supported; use GET"}).write(w)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		switch {
		case r.URL.Path == routePage:
			http.ServeFileFS(w, r, sub, "index.html")
			return
		case strings.HasSuffix(r.URL.Path, "/"): // no directory listings
			s.api(notFound).ServeHTTP(w, r)
			return
		}
		http.StripPrefix(routeAssets[:len(routeAssets)-1], files).ServeHTTP(w, r)
	})
}
