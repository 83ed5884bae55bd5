// chorus page: streams the microphone to POST /v1/whip (WHIP) and shows what comes back on
// the data channel: chorus.v1.StreamingRecognizeResponse messages in proto3 JSON, and a last
// {"error":{…}} message when the stream ends in error. No build step, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);

// state of the current session; window.chorus exposes it to tests and to the console.
const S = {
  pc: null, dc: null, stream: null, location: null,
  micStart: 0,          // performance.now() when the microphone started: audio time 0
  finals: [],           // final transcripts, in order
  finalLatencies: [],   // ms, per final
  finalAt: [],          // performance.now() at each final's arrival
  finalSpans: [],       // [result_start_time, result_end_time] of each final, seconds
  eof: false,
  error: null,
};
window.chorus = S;

function setState(state, text) {
  document.body.dataset.state = state;
  $("status").textContent = text || state;
}

function showError(msg) {
  S.error = msg;
  $("error").textContent = msg;
  $("error").hidden = false;
  setState("error", "error");
}

// seconds of a proto3 JSON Duration ("1.500s").
function dur(d) { return d ? parseFloat(d) : 0; }

function median(xs) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function ms(x) { return isFinite(x) ? Math.round(x) + " ms" : "—"; }

// ---- transcript -----------------------------------------------------------------------

let interimEl = null; // the span showing the current utterance's interim text

function clearPlaceholder() {
  const p = $("transcript").querySelector(".placeholder");
  if (p) p.remove();
}

function showInterim(res) {
  clearPlaceholder();
  if (!interimEl) {
    interimEl = document.createElement("span");
    interimEl.className = "interim";
    $("transcript").appendChild(interimEl);
  }
  const text = (res.alternatives && res.alternatives[0] && res.alternatives[0].transcript) || "";
  const stable = res.stableTranscript || "";
  interimEl.textContent = "";
  const st = document.createElement("span");
  st.className = "stable";
  st.textContent = stable;
  interimEl.appendChild(st);
  interimEl.appendChild(document.createTextNode(text.slice(stable.length)));
}

function showFinal(res) {
  clearPlaceholder();
  const text = ((res.alternatives && res.alternatives[0] && res.alternatives[0].transcript) || "").trim();
  if (interimEl) { interimEl.remove(); interimEl = null; }
  S.finals.push(text);
  if (!text) return;
  const el = document.createElement("span");
  el.className = "final";
  el.dataset.utterance = res.utterance || 0;
  el.dataset.end = dur(res.resultEndTime);
  el.textContent = text;
  const t = $("transcript");
  if (t.querySelector(".final")) t.appendChild(document.createTextNode(" "));
  t.appendChild(el);
}

// ---- served_by, experiment panel, pathway ----------------------------------------------

let servedShown = false;

function showServedBy(sb) {
  if (!sb || servedShown) return;
  servedShown = true;
  $("sb-model").textContent = sb.model || "—";
  $("sb-variant").textContent = sb.variant || "—";
  $("sb-version").textContent = sb.version || "—";
  $("sb-router").textContent = sb.router || "dense";
  $("sb-arm").textContent = sb.arm || "none (no experiment)";
  $("ab-arm").textContent = sb.arm || "none";
  $("ab-router").textContent = sb.router || "dense";
  if (sb.arm) {
    $("ab-note").textContent = "This stream was assigned to arm " + sb.arm + " (router " + (sb.router || "dense") + ").";
  }
  if (!sb.router || sb.router === "dense") {
    $("pathway-note").textContent = "Dense model: no experts. Every layer runs all of its neurons, so there is no activation pathway to draw; the heatmap appears when a model split into experts serves the stream.";
  } else {
    $("pathway-note").textContent = "Router " + sb.router + ": waiting for the server to send the activation pathway with a final result.";
  }
}

// drawPathway draws a layers × experts matrix of how often each expert ran (any
// non-negative numbers; each layer is scaled to its own maximum), accumulated over the
// stream's finals.
function drawPathway(layers) {
  const c = $("heatmap");
  const rows = layers.length, cols = Math.max(...layers.map((l) => l.length));
  if (!rows || !cols) return;
  c.hidden = false;
  const g = c.getContext("2d");
  const cw = c.width / cols, rh = c.height / rows;
  g.clearRect(0, 0, c.width, c.height);
  layers.forEach((row, i) => {
    const mx = Math.max(1e-9, ...row);
    row.forEach((v, j) => {
      const a = Math.max(0, v) / mx;
      g.fillStyle = `rgba(47, 91, 211, ${a.toFixed(3)})`;
      g.fillRect(j * cw, i * rh, Math.ceil(cw), Math.ceil(rh));
    });
  });
  $("pathway-note").textContent = `${rows} layers × ${cols} experts; darker ran more often.`;
}

// pathwayMatrix turns a final's Pathway (per layer: experts E, tokens T, masks = T bitmasks
// of ceil(E/8) bytes, base64 in JSON, bit j of byte j/8 set when expert j ran) into per-layer
// counts of the tokens each expert served, added to the stream's running totals.
let pathwayTotals = null;

function pathwayMatrix(r) {
  const p = r.pathway;
  if (!p || !Array.isArray(p.layers) || !p.layers.length) return null;
  const layers = p.layers.map((l) => {
    const e = Number(l.experts) || 0, t = Number(l.tokens) || 0, stride = Math.ceil(e / 8);
    const bytes = Uint8Array.from(atob(l.masks || ""), (c) => c.charCodeAt(0));
    const counts = new Array(e).fill(0);
    for (let tok = 0; tok < t; tok++) {
      for (let j = 0; j < e; j++) {
        if (bytes[tok * stride + (j >> 3)] & (1 << (j & 7))) counts[j]++;
      }
    }
    return counts;
  });
  if (!pathwayTotals || pathwayTotals.length !== layers.length) pathwayTotals = layers.map((l) => l.map(() => 0));
  layers.forEach((row, i) => row.forEach((v, j) => { pathwayTotals[i][j] = (pathwayTotals[i][j] || 0) + v; }));
  return pathwayTotals;
}

// ---- responses ---------------------------------------------------------------------------

function onMessage(ev) {
  let r;
  try { r = JSON.parse(ev.data); } catch (e) { showError("bad message from the server: " + e); return; }
  if (r.error) {
    showError(`stream ended: ${r.error.status}: ${r.error.message}`);
    return;
  }
  const now = performance.now();
  showServedBy(r.servedBy);
  const m = pathwayMatrix(r);
  if (m) drawPathway(m);
  for (const res of r.results || []) {
    const lag = now - (S.micStart + 1000 * dur(res.resultEndTime));
    if (res.isFinal) {
      showFinal(res);
      S.finalAt.push(now);
      S.finalSpans.push([dur(res.resultStartTime), dur(res.resultEndTime)]);
      if (S.micStart) {
        S.finalLatencies.push(lag);
        $("lat-final").textContent = ms(lag);
        $("lat-median").textContent = ms(median(S.finalLatencies)) + ` (${S.finalLatencies.length})`;
      }
    } else {
      showInterim(res);
      if (S.micStart) $("lat-interim").textContent = ms(lag);
    }
  }
  if (r.isEof) {
    S.eof = true;
    if (S.onEOF) S.onEOF();
  }
}

// ---- session -----------------------------------------------------------------------------

function streamingConfig() {
  const cfg = { interimResults: $("interim").checked, config: {} };
  if ($("model").value.trim()) cfg.config.model = $("model").value.trim();
  if ($("language").value.trim()) cfg.config.languageCode = $("language").value.trim();
  const router = $("router").value;
  // The pathway is asked for whatever the router: a dense stream simply has none.
  cfg.routing = { router: router, returnPathway: true };
  if (router && router !== "dense") cfg.routing.fraction = Number($("fraction").value) || 0.25;
  const heads = Number($("heads").value) || 0;
  if (heads > 0) {
    cfg.routing.heads = heads;
    cfg.routing.headRouter = "mlp";
    cfg.routing.mode = "PER_REQUEST"; // one head subset per stream: the mode that saves compute
  }
  return cfg;
}

function gatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, timeoutMs); // send what we have; the server learns the rest from our checks
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") { clearTimeout(t); resolve(); }
    });
  });
}

async function start() {
  $("error").hidden = true;
  S.finals = []; S.finalLatencies = []; S.finalAt = []; S.finalSpans = []; S.eof = false; S.error = null; S.micStart = 0;
  servedShown = false;
  pathwayTotals = null;
  $("transcript").innerHTML = "";
  interimEl = null;
  setState("connecting", "connecting…");
  $("mic").disabled = true;
  try {
    const pc = new RTCPeerConnection();
    S.pc = pc;
    // The audio transceiver is negotiated before the microphone opens, and the track is
    // attached once connected, so that no speech is lost to connection set-up.
    const tr = pc.addTransceiver("audio", { direction: "sendonly" });
    const dc = pc.createDataChannel("chorus");
    S.dc = dc;
    dc.onmessage = onMessage;
    const opened = new Promise((resolve, reject) => {
      dc.onopen = resolve;
      dc.onclose = () => reject(new Error("the results channel closed"));
    });
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") showError("connection to the server failed (ICE)");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringDone(pc, 1500);
    const res = await fetch("/v1/whip?config=" + encodeURIComponent(JSON.stringify(streamingConfig())), {
      method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
    });
    if (res.status !== 201) {
      let msg = res.status + " " + res.statusText;
      try { msg += ": " + (await res.json()).error.message; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    S.location = res.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    await opened;
    dc.onclose = () => { if (document.body.dataset.state === "live") stop(); };
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    S.stream = stream;
    S.micOpened = performance.now(); // the microphone's (or a fake device's file's) time 0
    await tr.sender.replaceTrack(stream.getAudioTracks()[0]);
    S.micStart = performance.now();
    setState("live", "listening");
    $("mic").textContent = "Stop";
    $("mic").setAttribute("aria-pressed", "true");
    $("mic").disabled = false;
    $("finalize").disabled = false;
    pollRTT();
  } catch (e) {
    showError(String(e.message || e));
    teardown();
  }
}

// stop ends the session: DELETE finalizes what the server heard and answers once the finals
// and is_eof are on their way; the peer closes after they arrived (or after a timeout).
async function stop() {
  if (document.body.dataset.state !== "live") return;
  setState("stopping", "finishing…");
  $("mic").disabled = true;
  $("finalize").disabled = true;
  if (S.stream) S.stream.getTracks().forEach((t) => t.stop());
  const eof = new Promise((resolve) => {
    if (S.eof) return resolve();
    S.onEOF = resolve;
    setTimeout(resolve, 5000);
  });
  try {
    if (S.location) await fetch(S.location, { method: "DELETE" });
  } catch (e) { /* the server may be gone; the peer closes anyway */ }
  await eof;
  teardown();
  if (!S.error) setState("ended", "ended");
}

function teardown() {
  if (S.stream) S.stream.getTracks().forEach((t) => t.stop());
  if (S.pc) S.pc.close();
  S.pc = null; S.dc = null; S.stream = null; S.location = null; S.onEOF = null;
  $("mic").textContent = "Start microphone";
  $("mic").setAttribute("aria-pressed", "false");
  $("mic").disabled = false;
  $("finalize").disabled = true;
}

async function pollRTT() {
  while (S.pc && document.body.dataset.state === "live") {
    try {
      const stats = await S.pc.getStats();
      stats.forEach((s) => {
        if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
          $("lat-rtt").textContent = ms(1000 * s.currentRoundTripTime);
        }
      });
    } catch (e) { /* closed meanwhile */ }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

$("mic").addEventListener("click", () => (document.body.dataset.state === "live" ? stop() : start()));
$("finalize").addEventListener("click", () => {
  if (S.dc && S.dc.readyState === "open") S.dc.send(JSON.stringify({ finalize: {} }));
});
// Closing the tab closes the peer; the server sees the data channel close and ends the
// stream. A DELETE with keepalive lets it release the session at once.
window.addEventListener("pagehide", () => {
  if (S.location) fetch(S.location, { method: "DELETE", keepalive: true });
});
