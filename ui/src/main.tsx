import { render } from "preact";
import { adoptTokenFromLocation } from "./auth";
import { registerServiceWorker } from "./pwa";
import { App } from "./ui/App";
import "./styles.css";

adoptTokenFromLocation();
render(<App />, document.getElementById("app")!);
// Installable app shell on https / localhost (never in the desktop app).
registerServiceWorker();
