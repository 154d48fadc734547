import { render } from "preact";
import { adoptTokenFromLocation } from "./auth";
import { App } from "./ui/App";
import "./styles.css";

adoptTokenFromLocation();
render(<App />, document.getElementById("app")!);
