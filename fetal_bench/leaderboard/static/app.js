// fetal-bench leaderboard: sortable tables, filters (text, training data, zero-shot), collapsible
// columns, and the view (filters and sort) kept in the page's URL.
//
// The tables arrive fully rendered, in rank order, so a page works without this script. Their
// header cells hold plain text: this script turns each sortable one into a button (with an arrow;
// the header cell's aria-sort says the current order), so that without JavaScript no control is
// shown that would do nothing. The values to sort on come from the JSON block the build embeds
// (#leaderboard-data), not from the cell text, so "0.912 [0.88, 0.94]" sorts as 0.912 and a
// missing score as missing. Rows are only moved or hidden and header text is only moved into a
// button: nothing here writes HTML, so no text from a result file is ever parsed as markup.
//
// URL parameters. The view is kept in the query string so that a link reproduces it: read when
// the page loads, rewritten with history.replaceState (no new history entry) at every change.
// Each is left out while at its default:
//   q=TEXT                      the text filter: rows whose text contains TEXT (any case)
//   training=KIND,KIND          the training-data kinds shown (real, synthetic, hybrid, none);
//                               left out: all of them; empty ("training="): none
//   zero_shot=1                 zero-shot results only
//   sort=TABLE.COLUMN.DIR,...   per table, the column it is sorted by and the direction (asc or
//                               desc). TABLE is the table's id (main, variant-1, unverified,
//                               references, tasks, ...), COLUMN the column's key in the page's
//                               data block (rank, submission, a metric such as hd95_mm,
//                               country-uganda, ...). Left out: the build's order (by rank).
// For example tasks/hc18-head-seg.html?q=unet&training=real,hybrid&sort=main.hd95_mm.asc
// Other parameters and the #fragment are kept as they are; a value naming no table, column or
// kind is ignored.
(function () {
  "use strict";

  var PARAM_QUERY = "q";
  var PARAM_TRAINING = "training";
  var PARAM_ZERO_SHOT = "zero_shot";
  var PARAM_SORT = "sort";
  var OUR_PARAMS = [PARAM_QUERY, PARAM_TRAINING, PARAM_ZERO_SHOT, PARAM_SORT];

  function readData() {
    var node = document.getElementById("leaderboard-data");
    if (!node) {
      return { tables: {} };
    }
    try {
      return JSON.parse(node.textContent || "{}");
    } catch (error) {
      return { tables: {} };
    }
  }

  function forEach(list, callback) {
    Array.prototype.forEach.call(list, callback);
  }

  // Missing values (null) always go last, whichever the direction: "no score" is never the best.
  function compare(a, b, type, sign) {
    var aMissing = a === null || a === undefined;
    var bMissing = b === null || b === undefined;
    if (aMissing || bMissing) {
      return aMissing === bMissing ? 0 : aMissing ? 1 : -1;
    }
    if (type === "num") {
      return sign * (a - b);
    }
    return sign * String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: "base" });
  }

  // One sortable table: header buttons, and sortBy(key, dir). `changed` is called after a click.
  function setupTable(table, spec, changed) {
    var tbody = table.tBodies[0];
    if (!tbody || !spec) {
      return null;
    }
    var columns = spec.columns;
    var rowsById = {};
    forEach(tbody.rows, function (row) {
      rowsById[row.getAttribute("data-row")] = row;
    });
    var headers = table.querySelectorAll("thead th[data-col]");
    // The column the build's order follows (ascending), if any: a ranking's rank.
    var initial = spec.sorted || null;
    var state = { key: initial, dir: "asc" };

    function indexOf(key) {
      for (var i = 0; i < columns.length; i += 1) {
        if (columns[i].key === key && columns[i].sortable) {
          return i;
        }
      }
      return -1;
    }

    function showState() {
      forEach(headers, function (th) {
        if (th.getAttribute("data-col") === state.key) {
          th.setAttribute("aria-sort", state.dir === "asc" ? "ascending" : "descending");
        } else {
          th.removeAttribute("aria-sort");
        }
      });
    }

    function sortBy(key, dir) {
      var index = indexOf(key);
      if (index < 0 || (dir !== "asc" && dir !== "desc")) {
        return false;
      }
      var type = columns[index].type;
      var sign = dir === "desc" ? -1 : 1;
      // Ties keep rank order (the build's order), so sorting is stable and predictable.
      var order = spec.order.slice();
      var position = {};
      order.forEach(function (id, i) {
        position[id] = i;
      });
      order.sort(function (a, b) {
        var result = compare(spec.rows[a][index], spec.rows[b][index], type, sign);
        return result !== 0 ? result : position[a] - position[b];
      });
      order.forEach(function (id) {
        if (rowsById[id]) {
          tbody.appendChild(rowsById[id]);
        }
      });
      state.key = key;
      state.dir = dir;
      showState();
      return true;
    }

    forEach(headers, function (th) {
      var key = th.getAttribute("data-col");
      if (indexOf(key) < 0) {
        return;
      }
      // The header's own text (and any note in it) moves into the button; nothing is parsed.
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) {
        button.appendChild(th.firstChild);
      }
      var arrow = document.createElement("span");
      arrow.className = "arrow";
      arrow.setAttribute("aria-hidden", "true");
      button.appendChild(arrow);
      th.appendChild(button);
      button.addEventListener("click", function () {
        // First click: the column's natural direction (best first for scores); again: reversed.
        var dir = key === state.key ? (state.dir === "asc" ? "desc" : "asc") : columns[indexOf(key)].first;
        sortBy(key, dir);
        changed();
      });
    });
    showState();

    return {
      id: table.id,
      sortBy: sortBy,
      // "COLUMN.DIR" for the URL, or null while in the build's order.
      urlValue: function () {
        if (state.key === null || (state.key === initial && state.dir === "asc")) {
          return null;
        }
        return state.key + "." + state.dir;
      },
      headerOf: function (key) {
        return table.querySelector('thead th[data-col="' + key + '"]');
      },
    };
  }

  // The text filter and, on task pages, the training-data checkboxes and the zero-shot switch.
  // A row shows when it passes all three; the rows carry data-training and data-zero-shot.
  function setupFilter(fromUrl, changed) {
    var box = document.querySelector(".filter");
    var input = document.getElementById("lb-filter");
    if (!box || !input) {
      return null;
    }
    box.hidden = false;
    var status = box.querySelector(".filter-status");
    var rows = document.querySelectorAll("table[data-filterable] tbody tr");
    var kinds = box.querySelectorAll("input.filter-training");
    var zeroShot = box.querySelector("input.filter-zero-shot");

    if (fromUrl.query !== null) {
      input.value = fromUrl.query;
    }
    if (fromUrl.training !== null && kinds.length) {
      var wanted = fromUrl.training.split(",");
      forEach(kinds, function (kind) {
        kind.checked = wanted.indexOf(kind.value) !== -1;
      });
    }
    if (zeroShot && fromUrl.zeroShot !== null) {
      zeroShot.checked = fromUrl.zeroShot;
    }

    function allowedKinds() {
      var allowed = {};
      var restricted = false;
      forEach(kinds, function (kind) {
        allowed[kind.value] = kind.checked;
        restricted = restricted || !kind.checked;
      });
      return restricted ? allowed : null;
    }

    function apply() {
      var query = input.value.trim().toLowerCase();
      var allowed = allowedKinds();
      var onlyZeroShot = zeroShot ? zeroShot.checked : false;
      var shown = 0;
      forEach(rows, function (row) {
        var match = !query || row.textContent.toLowerCase().indexOf(query) !== -1;
        var kind = row.getAttribute("data-training");
        if (match && allowed && kind !== null) {
          // A row of unknown training data is hidden as soon as any kind is unticked.
          match = allowed[kind] === true;
        }
        if (match && onlyZeroShot && row.hasAttribute("data-zero-shot")) {
          match = row.getAttribute("data-zero-shot") === "yes";
        }
        row.hidden = !match;
        if (match) {
          shown += 1;
        }
      });
      if (status) {
        var active = query || allowed || onlyZeroShot;
        status.textContent = active ? shown + " of " + rows.length + " rows shown" : "";
      }
    }

    function update() {
      apply();
      changed();
    }

    input.addEventListener("input", update);
    forEach(kinds, function (kind) {
      kind.addEventListener("change", update);
    });
    if (zeroShot) {
      zeroShot.addEventListener("change", update);
    }
    apply();

    return {
      // [name, value] pairs for the URL, defaults left out.
      urlParams: function () {
        var params = [];
        if (input.value.trim()) {
          params.push([PARAM_QUERY, input.value]);
        }
        if (allowedKinds()) {
          var ticked = [];
          forEach(kinds, function (kind) {
            if (kind.checked) {
              ticked.push(kind.value);
            }
          });
          params.push([PARAM_TRAINING, ticked.join(",")]);
        }
        if (zeroShot && zeroShot.checked) {
          params.push([PARAM_ZERO_SHOT, "1"]);
        }
        return params;
      },
    };
  }

  // Optional columns collapse so a ranking fits the screen; one button per table shows them.
  // Returns, per table id, a function that opens them.
  function setupColumnToggles() {
    var openers = {};
    forEach(document.querySelectorAll("button.more-columns"), function (button) {
      // By tag too: a table's section may carry the same id (e.g. "references").
      var table = document.querySelector('table[id="' + button.getAttribute("data-table") + '"]');
      if (!table) {
        return;
      }
      var label = button.textContent;
      button.hidden = false;

      function show(open) {
        table.classList.toggle("show-all", open);
        button.setAttribute("aria-expanded", open ? "true" : "false");
        button.textContent = open ? "Show fewer columns" : label;
      }

      button.addEventListener("click", function () {
        show(!table.classList.contains("show-all"));
      });
      openers[table.id] = function () {
        show(true);
      };
    });
    return openers;
  }

  // The view as the URL gives it; null where a parameter is absent.
  function readUrl() {
    var params;
    try {
      params = new URLSearchParams(window.location.search);
    } catch (error) {
      return { query: null, training: null, zeroShot: null, sort: [] };
    }
    var sorts = [];
    (params.get(PARAM_SORT) || "").split(",").forEach(function (item) {
      var parts = item.split(".");
      if (parts.length === 3) {
        sorts.push({ table: parts[0], key: parts[1], dir: parts[2] });
      }
    });
    return {
      query: params.get(PARAM_QUERY),
      training: params.get(PARAM_TRAINING),
      zeroShot: params.has(PARAM_ZERO_SHOT) ? params.get(PARAM_ZERO_SHOT) === "1" : null,
      sort: sorts,
    };
  }

  // Values are percent-encoded, except the commas that separate list items.
  function encode(value) {
    return encodeURIComponent(value).replace(/%2C/gi, ",");
  }

  function writeUrl(filter, sortables) {
    if (!window.history || typeof window.history.replaceState !== "function") {
      return;
    }
    var kept = new URLSearchParams(window.location.search);
    OUR_PARAMS.forEach(function (name) {
      kept.delete(name);
    });
    var parts = [];
    if (kept.toString()) {
      parts.push(kept.toString());
    }
    (filter ? filter.urlParams() : []).forEach(function (pair) {
      parts.push(pair[0] + "=" + encode(pair[1]));
    });
    var sorts = [];
    sortables.forEach(function (sortable) {
      var value = sortable.urlValue();
      if (value !== null) {
        sorts.push(sortable.id + "." + value);
      }
    });
    if (sorts.length) {
      parts.push(PARAM_SORT + "=" + encode(sorts.join(",")));
    }
    var url = window.location.pathname + (parts.length ? "?" + parts.join("&") : "") + window.location.hash;
    try {
      window.history.replaceState(window.history.state, "", url);
    } catch (error) {
      // Some browsers refuse to rewrite file:// URLs; the page still works, only the link is not updated.
    }
  }

  function init() {
    document.documentElement.classList.add("js");
    var data = readData();
    var specs = data.tables || {};
    var fromUrl = readUrl();
    var sortables = [];
    var filter = null;
    var ready = false;

    function changed() {
      if (ready) {
        writeUrl(filter, sortables);
      }
    }

    forEach(document.querySelectorAll("table[data-sortable]"), function (table) {
      var sortable = setupTable(table, specs[table.id], changed);
      if (sortable) {
        sortables.push(sortable);
      }
    });
    var openers = setupColumnToggles();
    fromUrl.sort.forEach(function (wanted) {
      sortables.forEach(function (sortable) {
        if (sortable.id === wanted.table && sortable.sortBy(wanted.key, wanted.dir)) {
          // A table sorted by a collapsed column shows that column.
          var header = sortable.headerOf(wanted.key);
          if (header && header.hasAttribute("data-opt") && openers[sortable.id]) {
            openers[sortable.id]();
          }
        }
      });
    });
    filter = setupFilter(fromUrl, changed);
    ready = true;
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
