local http = require "relua.http"
local json = require "relua.json"
local h = require "support.h"
local servers = require "support.http_servers"

-- Fast retries for the specs: the policy is the same, only the waits are short.
local QUICK = { base = 0.02, max_delay = 0.05 }

local function sha256_file(path)
  local r = h.sh("sha256sum " .. h.quote(path))
  return r.stdout:match("^(%x+)")
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

describe("relua.http", function()
  local origin, proxy

  setup(function()
    origin = servers.httpd()
    proxy = servers.faultproxy(origin)
  end)

  teardown(function()
    if proxy then proxy:stop() end
    if origin then origin:stop() end
    h.cleanup()
  end)

  describe("requests", function()
    it("GETs with headers and a query, and describes the response", function()
      local resp, err = http.get(origin.url .. "/echo", {
        headers = { ["X-Trace"] = "abc", accept = "application/json" },
        query = { b = "two words", a = { "1", "2" } },
      })
      assert.is_nil(err)
      assert.are.equal(200, resp.status)
      assert.is_true(resp.ok)
      assert.are.equal("application/json", resp.headers["content-type"])
      assert.are.equal(origin.url .. "/echo?a=1&a=2&b=two%20words", resp.url)
      assert.are.equal(1, resp.attempts)
      assert.are.equal(#resp.body, resp.size)
      assert.is_number(resp.duration)
      local seen = json.decode(resp.body)
      assert.are.equal("GET", seen.method)
      assert.are.equal("abc", seen.headers["x-trace"])
      assert.are.equal("application/json", seen.headers.accept)
      assert.are.equal(http.user_agent, seen.headers["user-agent"])
      assert.matches("^relua/%d+%.%d+%.%d+", http.user_agent)
      assert.are.same({ a = "2", b = "two words" }, seen.query)
      local names = {}
      for _, pair in ipairs(resp.header_list) do names[#names + 1] = pair[1] end
      assert.is_true(#names >= 3)
      for _, n in ipairs(names) do assert.are.equal(n:lower(), n) end
    end)

    it("POSTs and PUTs bodies with their headers", function()
      local resp = assert(http.post(origin.url .. "/echo", { body = "hello=world", content_type = "text/plain" }))
      local seen = json.decode(resp.body)
      assert.are.equal("POST", seen.method)
      assert.are.equal("hello=world", seen.body)
      assert.are.equal("text/plain", seen.headers["content-type"])
      assert.are.equal("11", seen.headers["content-length"])
      assert.is_nil(seen.headers.expect)

      resp = assert(http.put(origin.url .. "/echo", { json = { name = "pkg", n = 1 } }))
      seen = json.decode(resp.body)
      assert.are.equal("PUT", seen.method)
      assert.are.equal('{"n":1,"name":"pkg"}', seen.body)
      assert.are.equal("application/json", seen.headers["content-type"])

      resp = assert(http.request { method = "delete", url = origin.url .. "/echo" })
      assert.are.equal("DELETE", json.decode(resp.body).method)
      resp = assert(http.patch(origin.url .. "/echo", { body = "" }))
      assert.are.equal("PATCH", json.decode(resp.body).method)
    end)

    it("returns a non-2xx status as a response", function()
      local resp, err = http.get(origin.url .. "/status/404")
      assert.is_nil(err)
      assert.are.equal(404, resp.status)
      assert.is_false(resp.ok)
      assert.are.equal("status 404", resp.body)
    end)

    it("makes HEAD requests without a body", function()
      local resp = assert(http.head(origin.url .. "/bytes/5000"))
      assert.are.equal(200, resp.status)
      assert.are.equal("5000", resp.headers["content-length"])
      assert.are.equal("", resp.body)
    end)

    it("joins repeated headers and keeps them listed", function()
      local resp = assert(http.get(origin.url .. "/headers"))
      assert.are.equal("one, two", resp.headers["x-multi"])
      assert.are.equal("a=1\nb=2", resp.headers["set-cookie"])
      local cookies = {}
      for _, pair in ipairs(resp.header_list) do
        if pair[1] == "set-cookie" then cookies[#cookies + 1] = pair[2] end
      end
      assert.are.same({ "a=1", "b=2" }, cookies)
    end)

    it("trims the blanks around a header value and unfolds a folded one", function()
      local resp = assert(http.get(origin.url .. "/headers"))
      assert.are.equal("padded value", resp.headers["x-padded"])
      assert.are.equal("", resp.headers["x-empty"])
      assert.are.equal("a: b:c", resp.headers["x-colon"])
      assert.are.equal("first second", resp.headers["x-folded"])
    end)
  end)

  describe("files", function()
    it("streams a response body to a file", function()
      local dir = h.tmpdir()
      local out = dir .. "/blob.bin"
      local resp = assert(http.get(origin.url .. "/bytes/3000000", { output = out, progress = false }))
      assert.are.equal(200, resp.status)
      assert.is_nil(resp.body)
      assert.are.equal(3000000, resp.size)
      local data = h.slurp(out)
      assert.are.equal(3000000, #data)
      assert.are.equal(("0123456789abcdef"):rep(4), data:sub(1, 64))
      assert.is_false(exists(out .. ".part"))
    end)

    it("keeps an error page out of the output path", function()
      local dir = h.tmpdir()
      local out = dir .. "/missing.bin"
      local resp = assert(http.get(origin.url .. "/status/404", { output = out }))
      assert.are.equal(404, resp.status)
      assert.are.equal("status 404", resp.body)
      assert.is_false(exists(out))
      assert.is_false(exists(out .. ".part"))
    end)

    it("leaves no file behind when the download fails", function()
      local dir = h.tmpdir()
      local out = dir .. "/cut.bin"
      local resp, err, code = http.get(origin.url .. "/truncate?size=100&send=40", { output = out, retry = false })
      assert.is_nil(resp)
      assert.are.equal("truncated", code, err)
      assert.is_false(exists(out))
      assert.is_false(exists(out .. ".part"))
    end)

    it("streams a request body from a file", function()
      local dir = h.tmpdir()
      local src = dir .. "/upload.bin"
      local content = ("relua streams this\n"):rep(50000)
      h.spit(src, content)
      local resp = assert(http.put(origin.url .. "/echo", { body_file = src }))
      local seen = json.decode(resp.body)
      assert.are.equal("PUT", seen.method)
      assert.are.equal(#content, seen.body_size)
      assert.are.equal(sha256_file(src), seen.body_sha256)
      assert.are.equal("application/octet-stream", seen.headers["content-type"])
    end)

    it("reports a missing body_file as a file failure", function()
      local resp, err, code = http.put(origin.url .. "/echo", { body_file = "/nonexistent/relua.bin" })
      assert.is_nil(resp)
      assert.are.equal("file", code)
      assert.are.equal("http: PUT " .. origin.url .. "/echo: cannot read body_file /nonexistent/relua.bin: No such file or directory", err)
      local dir = h.tmpdir()
      resp, err, code = http.put(origin.url .. "/echo", { body_file = dir })
      assert.are.equal("file", code)
      assert.matches("cannot read body_file " .. dir .. ": Is a directory", err, 1, true)
    end)

    it("reports an output path it cannot write as a file failure", function()
      local resp, err, code = http.get(origin.url .. "/bytes/10", { output = "/nonexistent/dir/out.bin" })
      assert.is_nil(resp)
      assert.are.equal("file", code)
      assert.are.equal("http: GET " .. origin.url .. "/bytes/10: cannot write output /nonexistent/dir/out.bin.part: No such file or directory", err)
    end)

    it("uploads a multipart form with a file part streamed from disk", function()
      local dir = h.tmpdir()
      local wheel = dir .. "/pkg-1.0-py3-none-any.whl"
      h.spit(wheel, ("PK\3\4 not really a zip "):rep(20000))
      local resp = assert(http.post(origin.url .. "/upload", {
        form = {
          { name = ":action", value = "file_upload" },
          { name = "name", value = "pkg" },
          { name = "content", file = wheel },
          { name = "extra", file = wheel, filename = "renamed.bin", type = "application/zip" },
        },
      }))
      assert.are.equal(200, resp.status, resp.body)
      local parts = json.decode(resp.body).parts
      assert.are.equal(4, #parts)
      assert.are.equal(":action", parts[1].name)
      assert.are.equal("file_upload", parts[1].value)
      assert.are.equal("pkg", parts[2].value)
      assert.are.equal("content", parts[3].name)
      assert.are.equal("pkg-1.0-py3-none-any.whl", parts[3].filename)
      assert.are.equal("application/octet-stream", parts[3].type)
      assert.are.equal(sha256_file(wheel), parts[3].sha256)
      assert.are.equal(#h.slurp(wheel), parts[3].size)
      assert.are.equal("renamed.bin", parts[4].filename)
      assert.are.equal("application/zip", parts[4].type)
      assert.are.equal(sha256_file(wheel), parts[4].sha256)
    end)

    it("reports a missing form file before sending anything", function()
      local resp, err, code = http.post(origin.url .. "/upload", {
        form = { { name = "content", file = "/nonexistent/pkg.whl" } } })
      assert.is_nil(resp)
      assert.are.equal("file", code)
      assert.matches("cannot read form file /nonexistent/pkg.whl: No such file or directory", err, 1, true)
    end)
  end)

  describe("authentication", function()
    it("sends Basic auth", function()
      local url = origin.url .. "/basic?user=alice&password=s3cret-pw"
      local resp = assert(http.get(url, { auth = { user = "alice", password = "s3cret-pw" } }))
      assert.are.equal(200, resp.status)
      resp = assert(http.get(url, { auth = { user = "alice", password = "wrong-pw" } }))
      assert.are.equal(401, resp.status)
    end)

    it("sends a bearer token", function()
      local resp = assert(http.get(origin.url .. "/bearer?token=tok-123456", { bearer = "tok-123456" }))
      assert.are.equal(200, resp.status)
      resp = assert(http.get(origin.url .. "/bearer?token=tok-123456", { bearer = "tok-999999" }))
      assert.are.equal(401, resp.status)
    end)

    it("never shows tokens, passwords or URL credentials in errors", function()
      local _, err, code = http.get("http://127.0.0.1:1/private", { bearer = "npm_SECRETTOKEN42", retry = false })
      assert.are.equal("connect", code)
      assert.is_nil(err:find("SECRETTOKEN42", 1, true))
      _, err = http.get("http://bob:hunter2secret@127.0.0.1:1/x", { retry = false })
      assert.are.equal("http: GET http://127.0.0.1:1/x: connection refused (curl 7)", err)
      _, err = http.get("http://127.0.0.1:1/y", {
        headers = { Authorization = "Basic c2VjcmV0LXZhbHVl" }, retry = false })
      assert.is_nil(err:find("c2VjcmV0LXZhbHVl", 1, true))
      assert.are.equal("http://127.0.0.1:5/p?q=1", http.redact("http://u:p@127.0.0.1:5/p?q=1"))
    end)

    it("keeps credentials out of traces", function()
      local dir = h.tmpdir()
      local script = h.spit(dir .. "/trace.lua", string.format([[
        local http = require "relua.http"
        local r = assert(http.get(%q, { bearer = "trace-token-77777" }))
        local seen = require("relua.json").decode(r.body)
        io.write(r.status, " ", seen.headers.authorization)
      ]], "http://tracer:pw-88888888@127.0.0.1:" .. origin.port .. "/echo"))
      local r = h.relua({ script }, { env = { RELUA_HTTP_TRACE = "1" } })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("200 Bearer trace-token-77777", r.stdout)
      assert.matches("http: > GET http://127.0.0.1:%d+/echo", r.stderr)
      assert.matches("http: < 200 GET", r.stderr)
      assert.is_nil(r.stderr:find("77777", 1, true))
      assert.is_nil(r.stderr:find("88888888", 1, true))
    end)
  end)

  describe("redirects", function()
    it("follows redirects and reports the final URL", function()
      local resp = assert(http.get(origin.url .. "/redirect/3"))
      assert.are.equal(200, resp.status)
      assert.are.equal(4, resp.redirects)  -- 3, 2, 1, 0, then /echo
      assert.are.equal(origin.url .. "/echo", resp.url)
    end)

    it("does not send credentials to another host", function()
      local other = "http://localhost:" .. origin.port .. "/echo"
      local resp = assert(http.get(origin.url .. "/redirect-to?url=" .. http.urlencode(other),
        { bearer = "redirect-token-1234" }))
      assert.are.equal(200, resp.status)
      assert.are.equal(other, resp.url)
      assert.is_nil(json.decode(resp.body).headers.authorization)
      resp = assert(http.get(origin.url .. "/redirect-to?url=" .. http.urlencode(other),
        { auth = { user = "u", password = "redirect-pw-1234" } }))
      assert.is_nil(json.decode(resp.body).headers.authorization)
      -- the same host keeps them
      resp = assert(http.get(origin.url .. "/redirect/0", { bearer = "redirect-token-1234" }))
      assert.are.equal("Bearer redirect-token-1234", json.decode(resp.body).headers.authorization)
    end)

    it("stops at max_redirects and can leave redirects alone", function()
      local resp, err, code = http.get(origin.url .. "/redirect/5", { max_redirects = 2 })
      assert.is_nil(resp)
      assert.are.equal("redirects", code)
      assert.matches("^http: GET " .. origin.url:gsub("%p", "%%%0") .. "/redirect/5: ", err)
      resp = assert(http.get(origin.url .. "/redirect/1", { follow = false }))
      assert.are.equal(302, resp.status)
      assert.are.equal("/redirect/0", resp.headers.location)
    end)
  end)

  describe("failures", function()
    it("names the method and URL of a refused connection", function()
      local resp, err, code = http.get("http://127.0.0.1:1/foo", { retry = false })
      assert.is_nil(resp)
      assert.are.equal("connect", code)
      assert.are.equal("http: GET http://127.0.0.1:1/foo: connection refused (curl 7)", err)
    end)

    it("times out", function()
      local resp, err, code = http.get(origin.url .. "/slow?seconds=3", { timeout = 0.3, retry = false })
      assert.is_nil(resp)
      assert.are.equal("timeout", code)
      assert.matches("^http: GET .*/slow%?seconds=3: operation timed out .*%(curl 28%)$", err)
    end)

    it("gives up on a stalled transfer", function()
      local resp, err, code = http.get(origin.url .. "/slow?seconds=4", { stall_timeout = 1, retry = false })
      assert.is_nil(resp)
      assert.are.equal("timeout", code)
      assert.matches("(curl 28)", err, 1, true)
    end)

    it("detects a body shorter than its Content-Length", function()
      local resp, err, code = http.get(origin.url .. "/truncate?size=1000&send=10", { retry = false })
      assert.is_nil(resp)
      assert.are.equal("truncated", code)
      assert.matches("truncated body", err, 1, true)
    end)

    it("detects a connection closed inside the response headers", function()
      for _, n in ipairs { 17, 40, 100 } do  -- 17: just "HTTP/1.0 200 OK\r\n"
        proxy:fault { fault = "truncate", bytes = n }
        local resp, err, code = http.get(proxy.url .. "/bytes/1000", { retry = false, fresh = true })
        assert.is_nil(resp, "cut at " .. n)
        assert.are.equal("truncated", code)
        assert.matches(": truncated response: the connection closed inside the headers$", err)
      end
      proxy:fault { fault = "truncate", bytes = 0 }
      local resp, err, code = http.get(proxy.url .. "/bytes/1000", { retry = false, fresh = true })
      assert.is_nil(resp)
      assert.are.equal("network", code, err)
    end)

    it("caps the response size", function()
      local resp, err, code = http.get(origin.url .. "/bytes/20000", { max_size = 10000 })
      assert.is_nil(resp)
      assert.are.equal("too_large", code)
      assert.matches("over max_size %(10000 bytes%)", err)
      local dir = h.tmpdir()
      resp, err, code = http.get(origin.url .. "/bytes/20000", { max_size = 10000, output = dir .. "/x" })
      assert.are.equal("too_large", code, err)
      assert.is_false(exists(dir .. "/x.part"))
      assert.are.equal(20000, assert(http.get(origin.url .. "/bytes/20000", { max_size = 20000 })).size)
    end)

    it("does not resolve names it cannot", function()
      local resp, err, code = http.get("http://relua-no-such-host.invalid/x", { retry = false })
      assert.is_nil(resp)
      assert.are.equal("resolve", code, err)
    end)
  end)

  describe("TLS", function()
    local tls
    setup(function() tls = servers.httpd { tls = true } end)
    teardown(function() if tls then tls:stop() end end)

    it("verifies certificates by default", function()
      local resp, err, code = http.get(tls.url .. "/echo", { retry = false })
      assert.is_nil(resp)
      assert.are.equal("tls", code, err)
      assert.matches("^http: GET https://127%.0%.0%.1:%d+/echo: ", err)
    end)

    it("trusts a given CA bundle, or nothing with insecure", function()
      local resp = assert(http.get(tls.url .. "/echo", { cainfo = tls.cert }))
      assert.are.equal(200, resp.status)
      resp = assert(http.get(tls.url .. "/echo", { insecure = true }))
      assert.are.equal(200, resp.status)
    end)

    it("takes the CA bundle from SSL_CERT_FILE or CURL_CA_BUNDLE", function()
      local dir = h.tmpdir()
      local script = h.spit(dir .. "/ca.lua", string.format([[
        local http = require "relua.http"
        local r, err = http.get(%q, { retry = false })
        io.write(r and r.status or err)
      ]], tls.url .. "/echo"))
      for _, vars in ipairs { { "SSL_CERT_FILE", "CURL_CA_BUNDLE" }, { "CURL_CA_BUNDLE", "SSL_CERT_FILE" } } do
        local var = vars[1]
        local r = h.relua({ script }, { env = { [var] = tls.cert, [vars[2]] = false } })
        assert.are.equal(0, r.code, r.stderr)
        assert.are.equal("200", r.stdout, var)
      end
    end)
  end)

  describe("retries", function()
    it("retries a 503 and then succeeds", function()
      local before = proxy:stats().connections
      proxy:fault { fault = "status", status = 503, count = 2 }
      local resp = assert(http.get(proxy.url .. "/echo", { retry = QUICK, fresh = true }))
      assert.are.equal(200, resp.status)
      assert.are.equal(3, resp.attempts)
      assert.are.equal(before + 3, proxy:stats().connections)
    end)

    it("returns the last 503 when the tries run out", function()
      proxy:fault { fault = "status", status = 503, count = 2 }
      local resp = assert(http.get(proxy.url .. "/echo", { retry = { tries = 2, base = 0.01 }, fresh = true }))
      assert.are.equal(503, resp.status)
      assert.are.equal(2, resp.attempts)
    end)

    it("honours Retry-After on a 429", function()
      proxy:fault { fault = "status", status = 429, retry_after = "1" }
      local resp = assert(http.get(proxy.url .. "/echo", { retry = QUICK, fresh = true }))
      assert.are.equal(200, resp.status)
      assert.are.equal(2, resp.attempts)
      assert.is_true(resp.duration >= 0.9, "waited " .. resp.duration .. " s")
    end)

    it("honours Retry-After given as an HTTP date", function()
      proxy:fault { fault = "status", status = 503, retry_after = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 2) }
      local resp = assert(http.get(proxy.url .. "/echo", { retry = QUICK, fresh = true }))
      assert.are.equal(200, resp.status)
      assert.are.equal(2, resp.attempts)
      assert.is_true(resp.duration >= 0.9, "waited " .. resp.duration .. " s")
    end)

    it("returns a 429 at once when Retry-After is too long", function()
      proxy:fault { fault = "status", status = 429, retry_after = "3600" }
      local resp = assert(http.get(proxy.url .. "/echo", { retry = QUICK, fresh = true }))
      assert.are.equal(429, resp.status)
      assert.are.equal(1, resp.attempts)
      assert.are.equal("3600", resp.headers["retry-after"])
    end)

    it("retries a GET after a reset, a hang and a truncated body", function()
      proxy:fault { fault = "reset" }
      proxy:fault { fault = "hang", seconds = 5 }
      proxy:fault { fault = "truncate" }
      local resp = assert(http.get(proxy.url .. "/bytes/100000", { retry = QUICK, timeout = 1, fresh = true }))
      assert.are.equal(200, resp.status)
      assert.are.equal(100000, resp.size)
      assert.are.equal(4, resp.attempts)
    end)

    it("never retries a POST that may have been received: ambiguous", function()
      local before = proxy:stats()
      proxy:fault { fault = "reset" }
      local resp, err, code, cause = http.post(proxy.url .. "/echo", { body = ("x"):rep(10000), retry = QUICK, fresh = true })
      assert.is_nil(resp)
      assert.are.equal("ambiguous", code)
      assert.are.equal("network", cause)
      assert.matches("^http: POST http://127%.0%.0%.1:%d+/echo: .*%(curl %d+%); the server may have acted on the POST: check before sending it again$", err)
      local after = proxy:stats()
      assert.are.equal(before.connections + 1, after.connections)
      assert.are.equal("POST /echo HTTP/1.1", after.requests[#after.requests])
      -- a POST that gets no answer in time is ambiguous too
      proxy:fault { fault = "hang", seconds = 5 }
      resp, err, code, cause = http.post(proxy.url .. "/echo", { body = "y", timeout = 0.3, retry = QUICK, fresh = true })
      assert.is_nil(resp)
      assert.are.equal("ambiguous", code, err)
      assert.are.equal("timeout", cause)
      assert.are.equal(before.connections + 2, proxy:stats().connections)
      -- and a 503 answer to a POST is a response, not retried
      proxy:fault { fault = "status", status = 503 }
      resp = assert(http.post(proxy.url .. "/echo", { body = "x", retry = QUICK, fresh = true }))
      assert.are.equal(503, resp.status)
      assert.are.equal(1, resp.attempts)
    end)

    it("retries a POST whose connection was refused (nothing was sent)", function()
      local resp, err, code = http.post("http://127.0.0.1:1/upload", { body = "x", retry = QUICK })
      assert.is_nil(resp)
      assert.are.equal("connect", code)
      assert.matches("%(after 4 attempts%)$", err)
    end)

    it("retries a request that opts in as idempotent", function()
      proxy:fault { fault = "reset" }
      local resp = assert(http.put(proxy.url .. "/echo", { body = "same bytes",
        retry = { idempotent = true, base = 0.01 }, fresh = true }))
      assert.are.equal(200, resp.status)
      assert.are.equal(2, resp.attempts)
      assert.are.equal("same bytes", json.decode(resp.body).body)
    end)

    it("honours the proxy variables", function()
      local dir = h.tmpdir()
      local script = h.spit(dir .. "/proxy.lua", [[
        local http = require "relua.http"
        local r = assert(http.get("http://relua-test.invalid/echo", { retry = false }))
        io.write(r.status, " ", require("relua.json").decode(r.body).path)
      ]])
      local r = h.relua({ script }, { env = { http_proxy = proxy.url, no_proxy = false, NO_PROXY = false } })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("200 /echo", r.stdout)
      local reqs = proxy:stats().requests
      assert.are.equal("GET http://relua-test.invalid/echo HTTP/1.1", reqs[#reqs])
    end)
  end)

  describe("http.all", function()
    it("runs requests concurrently under a limit, results in order", function()
      assert(http.get(origin.url .. "/stats/reset"))
      local reqs = {}
      for i = 1, 12 do reqs[i] = { url = origin.url .. "/concurrent?delay=0.3&i=" .. i } end
      reqs[13] = { url = "http://127.0.0.1:1/refused", retry = false }
      local results = http.all(reqs, { concurrency = 3 })
      assert.are.equal(13, #results)
      for i = 1, 12 do
        assert.are.equal(200, results[i].response.status)
        assert.are.equal("ok " .. i, results[i][1].body)
      end
      assert.is_nil(results[13][1])
      assert.are.equal("connect", results[13].code)
      assert.are.equal("connect", results[13][3])
      assert.matches("connection refused", results[13].err)
      local stats = json.decode(assert(http.get(origin.url .. "/stats")).body)
      assert.are.equal(3, stats.max_concurrent)
    end)

    it("retries each request by its own policy", function()
      proxy:fault { fault = "status", status = 503, count = 2 }
      local results = http.all({
        { url = proxy.url .. "/echo?n=1", retry = QUICK, fresh = true },
        { url = proxy.url .. "/echo?n=2", retry = QUICK, fresh = true },
        { method = "POST", url = proxy.url .. "/echo?n=3", body = "x", retry = QUICK, fresh = true },
      }, { concurrency = 1 })
      assert.are.equal(200, results[1].response.status)
      assert.are.equal(2, results[1].response.attempts)
      assert.are.equal(200, results[2].response.status)
      assert.are.equal(2, results[2].response.attempts)
      assert.are.equal(200, results[3].response.status)
      assert.are.equal(1, results[3].response.attempts)
    end)

    it("raises on a bad request before sending anything", function()
      assert.has_error(function() http.all({ { url = origin.url }, { ulr = "x" } }) end,
        "http.all: request 2: unknown option 'ulr'")
    end)
  end)

  describe("arguments", function()
    it("raises on programmer mistakes", function()
      assert.has_error(function() http.request { url = "http://x", timout = 3 } end,
        "http.request: unknown option 'timout'")
      assert.has_error(function() http.request { url = "http://x", body = "a", form = {} } end,
        "http.request: give at most one of body, body_file, json, form")
      assert.has_error(function() http.get(origin.url, { timeout = "3" }) end,
        "http.get: option 'timeout' must be a number, got string")
      assert.has_error(function() http.get(origin.url, { headers = { ["X-A"] = "a\r\nX-B: b" } }) end,
        "http.get: a header name or value contains a line break")
      assert.has_error(function() http.post(origin.url, { form = { { name = "a" } } }) end,
        "http.post: form part 1 (a): give exactly one of value, file")
      assert.has_error(function() http.request { method = "GET" } end, "http.request: 'url' is required")
    end)

    it("encodes queries", function()
      assert.are.equal("a%2Fb=c%20d&z=1", http.query { z = 1, ["a/b"] = "c d" })
      assert.are.equal("~-._AZaz09%C3%A9", http.urlencode("~-._AZaz09é"))
    end)
  end)

  describe("progress", function()
    local function run(env)
      local dir = h.tmpdir()
      local script = h.spit(dir .. "/dl.lua", string.format([[
        local http = require "relua.http"
        assert(http.get(%q, { output = %q }))
        assert(http.get(%q))
        io.write("done")
      ]], origin.url .. "/bytes/2097152", dir .. "/big.bin", origin.url .. "/bytes/1000"))
      return h.relua({ script }, { env = env })
    end

    it("writes one final line for a big transfer when stderr is not a terminal", function()
      local r = run({})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("done", r.stdout)
      assert.matches("^info: http: GET http://127%.0%.0%.1:%d+/bytes/2097152: 2%.0 MiB received in [%d.]+ s %([%d.]+ [KM]?i?B/s%)\n$", r.stderr)
    end)

    it("is silent with RELUA_PROGRESS=0 or RELUA_LOG_LEVEL=warn", function()
      local r = run({ RELUA_PROGRESS = "0" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("", r.stderr)
      r = run({ RELUA_LOG_LEVEL = "warn" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("", r.stderr)
    end)

    it("draws a bar on a terminal", function()
      local dir = h.tmpdir()
      local script = h.spit(dir .. "/tty.lua", string.format([[
        local http = require "relua.http"
        assert(http.get(%q, { output = %q }))
      ]], origin.url .. "/bytes/2097152?chunk_delay=0.02", dir .. "/big.bin"))
      local bin = h.bin:sub(1, 1) == "/" and h.bin or (h.root .. "/" .. h.bin)
      local r = h.sh("script -qec " .. h.quote(h.quote(bin) .. " " .. h.quote(script)) .. " /dev/null")
      assert.are.equal(0, r.code, r.stdout)
      assert.matches("\r\27%[K", r.stdout)
      assert.matches("http: 2097152 ↓ [%d.]+ [KM]iB / 2%.0 MiB +%d+%% ", r.stdout)
      assert.matches("http: GET http://127%.0%.0%.1:%d+/bytes/2097152%?chunk_delay=0%.02: 2%.0 MiB received in", r.stdout)
    end)
  end)

  describe("Ctrl-C", function()
    it("aborts a transfer, removes the partial file and exits 130", function()
      local dir = h.tmpdir()
      local out = dir .. "/slow.bin"
      local ready = dir .. "/ready"
      local script = h.spit(dir .. "/int.lua", string.format([[
        local http = require "relua.http"
        io.open(%q, "w"):close()
        http.get(%q, { output = %q })
        io.write("not reached")
      ]], ready, origin.url .. "/slow?seconds=5", out))
      local bin = h.bin:sub(1, 1) == "/" and h.bin or (h.root .. "/" .. h.bin)
      -- wait for the script to say it is about to send, then give curl a moment to connect
      local r = h.sh(string.format("%s %s & pid=$!; i=0; while [ ! -e %s ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done;"
        .. " sleep 0.3; kill -INT $pid; wait $pid", h.quote(bin), h.quote(script), h.quote(ready)))
      assert.are.equal(130, r.code, r.stderr)
      assert.are.equal("", r.stdout)
      assert.matches("interrupted", r.stderr)
      assert.is_false(exists(out .. ".part"))
    end)
  end)

  describe("the C core", function()
    local core = require "relua.core.http"

    it("collects transfers and multi handles, in any close order", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local m = core.multi()
        local t = assert(core.transfer { method = "GET", url = origin.url .. "/slow?seconds=2" })
        m:add(t)
        weak[1], weak[2] = m, t
        m:close()   -- a multi closed with a transfer still running
        t:close()
        t:close()   -- twice is fine
        assert.has_error(function() t:progress() end, "http: the transfer is closed")
        local t2 = assert(core.transfer { method = "GET", url = origin.url .. "/echo" })
        local m2 = core.multi()
        m2:add(t2)
        weak[3], weak[4] = m2, t2
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak))
    end)
  end)
end)

describe("relua.http memory #rss", function()
  local origin
  setup(function() origin = servers.httpd() end)
  teardown(function()
    if origin then origin:stop() end
    h.cleanup()
  end)

  it("uploads a 256 MiB file part with flat memory", function()
    local dir = h.tmpdir()
    local big = dir .. "/big.whl"
    assert.are.equal(0, h.sh("truncate -s 256M " .. h.quote(big)).code)
    local script = h.spit(dir .. "/up.lua", string.format([[
      local http = require "relua.http"
      local r, err = http.post(%q, { form = { { name = "name", value = "big" },
        { name = "content", file = %q } }, progress = false })
      assert(r, err)
      local st = io.open("/proc/self/status"):read("a")
      io.write(r.status, " ", st:match("VmHWM:%%s*(%%d+) kB"), " ", r.body)
    ]], origin.url .. "/upload", big))
    local r = h.relua({ script })
    assert.are.equal(0, r.code, r.stderr)
    local status, hwm, body = r.stdout:match("^(%d+) (%d+) (.*)$")
    assert.are.equal("200", status, r.stdout)
    local parts = json.decode(body).parts
    assert.are.equal(268435456, parts[2].size)
    assert.are.equal("a6d72ac7690f53be6ae46ba88506bd97302a093f7108472bd9efc3cefda06484", parts[2].sha256)
    assert.is_true(tonumber(hwm) < 30 * 1024, "peak resident memory " .. hwm .. " kB")
  end)
end)
