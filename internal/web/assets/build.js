// Follows a build's log and status over server-sent events, without a
// reload: lines come in batches and are appended in one DOM operation per
// batch; the view sticks to the bottom unless the reader scrolled up.
(function () {
  "use strict";
  var log = document.getElementById("log");
  if (!log || log.dataset.ended === "true") return;
  var maxLines = 20000;
  var url = log.dataset.events + "?after=" + encodeURIComponent(log.dataset.after || "0");
  var source = new EventSource(url);

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  source.addEventListener("lines", function (e) {
    var ev = JSON.parse(e.data);
    var stick = atBottom();
    // The server renders each line (escaped, ANSI colours as spans).
    log.insertAdjacentHTML("beforeend", ev.lines.map(function (l) {
      return '<span class="line">' + l + "</span>\n";
    }).join(""));
    var extra = log.children.length - maxLines;
    for (var i = 0; i < extra; i++) log.removeChild(log.firstElementChild);
    if (stick) log.scrollTop = log.scrollHeight;
  });

  source.addEventListener("status", function (e) {
    var st = JSON.parse(e.data);
    var status = document.getElementById("status");
    status.textContent = st.status;
    status.className = "status status-" + st.status;
    document.getElementById("release").textContent = st.release || "";
    document.getElementById("reason").textContent = st.reason || "";
    document.getElementById("elapsed").textContent = st.elapsed || "";
    var body = document.getElementById("services");
    if (st.services && st.services.length) {
      body.textContent = "";
      st.services.forEach(function (s) {
        var tr = document.createElement("tr");
        [s.service, s.image, s.digest].forEach(function (v, i) {
          var td = document.createElement("td");
          if (i > 0) { var c = document.createElement("code"); c.textContent = v || ""; td.appendChild(c); }
          else td.textContent = v;
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    }
  });

  source.addEventListener("end", function () {
    source.close();
    log.dataset.ended = "true";
  });
})();
