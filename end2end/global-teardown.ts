// Drops the cluster instances' database once the run is over (best effort: a database left
// behind only takes space).
import { execFileSync } from "child_process";

export default async function globalTeardown(): Promise<void> {
  const name = process.env.FLACK_E2E_CLUSTER;
  if (!name || !/^[a-z0-9_]+$/.test(name)) return;
  const postgres = process.env.FLACK_E2E_POSTGRES ?? "postgres://postgres@127.0.0.1:5432";
  try {
    execFileSync("psql", [`${postgres}/postgres`, "-q", "-c", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], {
      stdio: "ignore",
      timeout: 10_000,
    });
  } catch {
    // The servers may still be closing; the database is left.
  }
}
