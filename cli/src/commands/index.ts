import type { Command } from 'commander';
import { registerAnonymize } from './anonymize';
import { registerDataset } from './dataset';
import { registerEvaluate } from './evaluate';
import { registerPipeline } from './pipeline';
import { registerPretrain } from './pretrain';
import { registerSynthesize } from './synthesize';
import { registerTrainGenerator } from './train-generator';

/** Adds one subcommand to the program. */
export type RegisterCommand = (program: Command) => void;

/** Every subcommand, one file each (add yours here). */
export const commands: RegisterCommand[] = [
  registerAnonymize,
  registerDataset,
  registerEvaluate,
  registerPipeline,
  registerPretrain,
  registerSynthesize,
  registerTrainGenerator,
];
