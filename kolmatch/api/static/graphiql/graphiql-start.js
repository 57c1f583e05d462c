// Starts GraphiQL on #graphiql (index.html loads React, ReactDOM and GraphiQL first).
// A file rather than an inline script, so the page's Content-Security-Policy can forbid
// inline script.
"use strict";

(function start() {
  var h = React.createElement;

  // Every role may ask who it is, so this query works for any key pasted below.
  var DEFAULT_QUERY = [
    "# Who am I? Works for every API key.",
    "# A merchant's top matches next, for example:",
    '#   { merchant(id: "m0") { matches(first: 5) {',
    "#       edges { node { rank talent { name } } } } } }",
    "{",
    "  me {",
    "    kind",
    "    id",
    "  }",
    "}",
    "",
  ].join("\n");

  // The key is pasted here. Headers stay out of the browser's storage unless the user turns
  // on "Persist headers" in GraphiQL's settings (a shared machine must not keep a key):
  // GraphiQL leaves them out of its stored tabs, the storage below out of its history.
  // shouldPersistHeaders is left unset because setting it to false also hides that switch.
  var PLACEHOLDER = "<your API key>";
  var DEFAULT_HEADERS = '{"Authorization": "Bearer ' + PLACEHOLDER + '"}';

  // GraphiQL fetches the schema when it opens, before a key is pasted: that fetch is refused
  // (401) and completion and the docs would stay empty until the user clicked "Re-fetch
  // GraphQL schema". GraphiQL fetches it again whenever it is given a new fetcher, reading
  // the headers editor as it does, so a new fetcher is made once edited headers are complete
  // JSON with a key in them, and have stayed so for a moment (a key typed by hand is valid
  // JSON after each keystroke).
  var SETTLE_MS = 600;

  // GraphiQL 3 keeps the headers of every query run in its history (and favourites) in local
  // storage whatever "Persist headers" says, so a pasted key would stay on the machine. This
  // storage drops them from those lists unless the user has turned the switch on.
  var NAMESPACE = "graphiql:";
  var PERSIST_HEADERS = NAMESPACE + "shouldPersistHeaders";
  var LISTS_WITH_HEADERS = [NAMESPACE + "queries", NAMESPACE + "favorites"];

  function withoutHeaders(text) {
    var stored;
    try {
      stored = JSON.parse(text);
    } catch (notJson) {
      return text;
    }
    Object.keys(stored || {}).forEach(function strip(list) {
      if (Array.isArray(stored[list])) {
        stored[list].forEach(function (item) {
          if (item && typeof item === "object") {
            delete item.headers;
          }
        });
      }
    });
    return JSON.stringify(stored);
  }

  function ownKeys() {
    return Object.keys(window.localStorage).filter(function (key) {
      return key.indexOf(NAMESPACE) === 0;
    });
  }

  var storage = {
    getItem: function (key) {
      return window.localStorage.getItem(key);
    },
    setItem: function (key, value) {
      var keep = window.localStorage.getItem(PERSIST_HEADERS) === "true";
      if (!keep && LISTS_WITH_HEADERS.indexOf(key) >= 0) {
        value = withoutHeaders(value);
      }
      window.localStorage.setItem(key, value);
    },
    removeItem: function (key) {
      window.localStorage.removeItem(key);
    },
    clear: function () {
      ownKeys().forEach(function (key) {
        window.localStorage.removeItem(key);
      });
    },
    get length() {
      return ownKeys().length;
    },
  };

  function newFetcher() {
    return GraphiQL.createFetcher({ url: "/graphql" });
  }

  function KolmatchGraphiQL() {
    var state = React.useState(newFetcher);
    var fetcher = state[0];
    var setFetcher = state[1];
    var fetchedWith = React.useRef(DEFAULT_HEADERS);
    var timer = React.useRef(null);
    React.useEffect(function stopTimer() {
      return function () {
        clearTimeout(timer.current);
      };
    }, []);

    function onEditHeaders(text) {
      clearTimeout(timer.current);
      timer.current = setTimeout(function refetch() {
        if (text === fetchedWith.current || text.indexOf(PLACEHOLDER) >= 0) {
          return;
        }
        try {
          JSON.parse(text);
        } catch (notYet) {
          return; // still being typed
        }
        fetchedWith.current = text;
        setFetcher(newFetcher);
      }, SETTLE_MS);
    }

    return h(
      GraphiQL,
      {
        fetcher: fetcher,
        defaultQuery: DEFAULT_QUERY,
        defaultHeaders: DEFAULT_HEADERS,
        isHeadersEditorEnabled: true,
        defaultEditorToolsVisibility: "headers",
        onEditHeaders: onEditHeaders,
        storage: storage,
      },
      h(GraphiQL.Logo, null, "kolmatch"),
    );
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(h(KolmatchGraphiQL));
})();
