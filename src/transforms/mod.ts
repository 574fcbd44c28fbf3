/** The transform types: one line each. */
import { registryOf } from "../pipeline/stage.ts";
import { commandActivityTransform } from "./command_activity.ts";
import { containerTransform } from "./container.ts";
import { dnsDomainTransform } from "./dns_domain.ts";
import { ephemeralPortTransform } from "./ephemeral_port.ts";
import { filterTransform } from "./filter.ts";
import { redactTransform } from "./redact.ts";
import { tagsTransform } from "./tags.ts";

export const TRANSFORMS = registryOf(
  commandActivityTransform,
  containerTransform,
  dnsDomainTransform,
  ephemeralPortTransform,
  filterTransform,
  redactTransform,
  tagsTransform,
);
