"""Run configuration: dataclasses loaded from YAML, with `section.key=value` CLI overrides.

One schema serves every config file (configs/tiny.yaml for the CPU default, configs/training.yaml for a
7-8B checkpoint + LoRA on GPUs). Unknown keys fail with a one-line error naming the file and the key.
Every field carries help text (`metadata["help"]`), as TRL's configs do.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from .io import UserError, write_text


class _YAMLLoader(yaml.SafeLoader):
    """yaml.SafeLoader with YAML 1.2's booleans, true and false only. YAML 1.1 also reads an unquoted yes, no, on
    and off as booleans, which would turn `mixed_precision: no` into false."""


_BOOL = "tag:yaml.org,2002:bool"
_YAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_YAMLLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def read_yaml(text: str):
    """Parse YAML text as the config files and `--set` values are read (YAML 1.2 booleans)."""
    return yaml.load(text, Loader=_YAMLLoader)


CURRICULUM_DISTRACTOR_MODES = ("random", "keep", "first")  # sft.curriculum_distractor (data.cut_to_proof)
QHAT_CALIBRATIONS = ("temperature", "isotonic")  # knowledge.calibration (knowledge._fit)
FORMAT_STYLES = ("natural", "lookup")  # format.style (tasks.base.STYLES)
CHAT_TEMPLATE_MODES = ("auto", "never", "always")  # format.chat_template (prompting)


def _f(default: Any, help: str, choices: tuple | None = None, low: float | None = None, above: float | None = None,
       high: float | None = None):
    # choices / low (the least value allowed) / above (values must exceed it) / high (the largest value allowed):
    # checked when a config is loaded
    meta = {"help": help, "choices": choices, "low": low, "above": above, "high": high}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    name_or_path: str | None = _f(None, "Local HF checkpoint folder (or LoRA adapter folder) of the SFT policy. "
                                  "None means the built-in tiny model built from the fields below.")
    hidden_size: int = _f(128, "Tiny model: hidden size.")
    num_layers: int = _f(4, "Tiny model: number of transformer layers.")
    num_heads: int = _f(4, "Tiny model: attention heads.")
    intermediate_size: int = _f(512, "Tiny model: MLP width.")
    vocab_size: int = _f(1024, "Tiny model: BPE vocabulary size of the locally trained tokenizer.")
    corpus_problems: int = _f(1000, "Tiny model: generated problems (prompt + gold trace each) the tokenizer "
                              "is trained on by `oakdpo model init`.")
    max_position_embeddings: int = _f(1024, "Tiny model: longest sequence (tokens).")
    rope_theta: float = _f(10000.0, "Tiny model: base of the rotary position embedding. A larger base turns "
                           "more of each head's dimensions slowly enough to match a token's content across the "
                           "whole context (docs/tiny-model.md).", low=1.0)
    initializer_range: float = _f(0.08, "Tiny model: std of the random initial weights. Larger than HF's 0.02: "
                                  "a 128-wide model trained briefly from scratch learns to attend much sooner.")
    freeze_embeddings: bool = _f(False, "Tiny model: input embeddings random N(0, 1), untied from the output "
                                 "matrix and never trained (SFT and DPO freeze them), so words stay distinct for "
                                 "attention. SFT/DPO of any model: freeze its input embeddings.")
    induction_init: bool = _f(False, "Tiny model: start layer 0 with previous-token heads and layers "
                              "1..mimetic_layers with a mimetic (copying) initialisation, the two halves of an "
                              "induction circuit.")
    mimetic_layers: int = _f(1, "Tiny model (with induction_init): how many layers after layer 0 start mimetic "
                             "(layers 1..N). A second one gives the premise lookup a copying head to start from "
                             "in the layer after the first (docs/tiny-model.md).", low=0)
    restart_init_from: int = _f(0, "Tiny model (quickstart, with sft.restarts): the first SFT restart that also "
                                "starts from a new initial model, drawn with seed sft.seed + 100 per restart (the "
                                "same tokenizer), where earlier restarts keep the first one (docs/tiny-model.md). "
                                "0: every restart keeps it.", low=0)
    polarity_direction: float = _f(0.0, "Tiny model (with freeze_embeddings): scale of one random direction "
                                   "added to the frozen embeddings of the fused subject-verb tokens, + for those "
                                   "ending in 'not' ('Numpuses are not'), - for the positive ones ('Numpuses "
                                   "are'), so a step can read a premise's polarity linearly. 0 turns it off.")
    tag_form_direction: float = _f(0.0, "Tiny model (with freeze_embeddings): scale of one random direction added "
                                   "to the frozen embeddings of the second-form tags ('{12}', written before a "
                                   "premise's last word when an earlier premise ends in the same word), so a "
                                   "lookup can tell the two forms apart linearly. 0 turns it off.")
    subject_direction: float = _f(0.0, "Tiny model (with freeze_embeddings): scale of a random direction per "
                                  "subject word, added to the frozen embeddings of every fused subject-verb token "
                                  "with that subject ('Shumpuses are', 'Every shumpus is not', 'Each shumpus is "
                                  "an'), so a claim can copy its subject from the premise it cites linearly "
                                  "whatever the sentence's form. 0 turns it off.")
    dtype: str = _f("float32", "dtype of the weights: float32, bfloat16 or float16 (half-precision weights need a "
                    "GPU; for bf16 autocast with float32 weights see mixed_precision).")
    mixed_precision: str = _f("auto", "Autocast of SFT and DPO steps (TRL's bf16/fp16 flags; the weights stay in "
                              "`dtype`). 'auto': half precision on a GPU that has model.dtype's; 'no': none; "
                              "'bf16': bf16 autocast on any device with bf16 hardware, the CPU "
                              "included (AVX512-BF16 or AMX); where bf16 would be emulated (12x slower on an "
                              "AVX2 CPU), none, said on one line. Generation, evaluation and q-hat run in `dtype`.",
                              choices=("auto", "no", "bf16"))
    attn_implementation: str = _f("auto", "transformers' attention kernel wherever the model is loaded: 'auto' "
                                  "(transformers' default, sdpa), 'eager', 'sdpa', 'flash_attention_2', ... For "
                                  "the tiny model's short sequences (under 400 tokens) on a CPU, 'eager' with "
                                  "bf16 autocast trains fastest (docs/tiny-model.md).")
    lora: bool = _f(False, "Train a LoRA adapter (PEFT) instead of all weights.")
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA alpha.")
    lora_dropout: float = _f(0.05, "LoRA dropout.")
    lora_target_modules: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj"], "Module names LoRA adapts.")
    trust_remote_code: bool = _f(False, "Allow custom modelling code from the checkpoint folder. Off unless you ask.")
    allow_pickle: bool = _f(False, "Load a checkpoint that has only pickle weights (.bin/.pt). Unpickling can run "
                            "code: "
                            "off unless you trust the file (convert to safetensors instead).")
    device: str = _f("auto", "Where generation, evaluation and q-hat run the model: 'auto' (this rank's GPU when "
                     "there is one, else the CPU), 'cpu' or 'cuda'. Training places it through accelerate.",
                     choices=("auto", "cpu", "cuda"))
    ddp_find_unused_parameters: bool | None = _f(
        None, "Under DDP (torchrun, accelerate's MULTI_GPU), SFT and DPO: whether DDP looks for trainable parameters "
        "that got no gradient in a step, one more pass over the autograd graph per step. null: transformers' "
        "choice, which is on for a LoRA adapter and for all weights without activation checkpointing (and warns "
        "when it finds none). false: every trainable parameter takes part in every step, as in a dense model or "
        "its LoRA. true: a mixture of experts whose experts (or their adapters) train. DeepSpeed and FSDP do "
        "not read it.")


@dataclass
class FormatConfig:
    style: str = _f("natural", "How a problem and its proof are written. 'natural': the premises exactly as "
                    "written, numbered once, the query as written, an instruction (the task, the option types, "
                    "the trace grammar), forward gold proofs in plain sentences; what a real checkpoint should "
                    "see. 'lookup': the built-in tiny model's format (tags before each premise's last word, "
                    "backward proofs with lookup scaffolding, no instruction); configs/tiny.yaml selects it.",
                    choices=FORMAT_STYLES)
    chat_template: str = _f("auto", "'auto': a tokenizer with a chat template gets the instruction as the system "
                            "message and the problem as the user message (apply_chat_template with "
                            "add_generation_prompt), SFT and DPO use TRL's conversational form and generation "
                            "stops at the template's end of turn; a tokenizer without one gets plain text. "
                            "'never': always plain text. 'always': require a chat template (error without one).",
                            choices=CHAT_TEMPLATE_MODES)
    lookup_decoding: bool = _f(False, "Lookup style (configs/tiny.yaml): the decoder does the premise lookups the "
                               "trace asks for. A tag (or the dead end's '?') written right after a word "
                               "(\"wumpus[28]\") is chosen, by the model's scores, among the tags of the premises "
                               "that end in that word, and the premise's sentence follows as written instead of "
                               "being sampled (the HF backend's slot decoder). Other styles, and tasks without "
                               "lookups, generate as without it.")
    citation_decoding: bool = _f(False, "Lookup style (configs/tiny.yaml): a reasoning step's Action argument is "
                                 "chosen, by the model's scores, among the formulas its Thought cited (the tags "
                                 "before 'So') that the Action has not passed yet; the model still chooses which "
                                 "and in what order. Evaluation and generation use it; the loop's own samples "
                                 "follow oak.sample_citation_decoding. The HF backend's slot decoder; other "
                                 "styles, and tasks without lookups, generate as without it.")
    numbering_decoding: bool = _f(False, "Lookup style (configs/tiny.yaml): the tags the trace's bookkeeping fixes "
                                  "are written as fixed: a derived formula's number ('So [12]') is the next one "
                                  "(the prompt's Next: number, then one more each time) or the query's [Q], "
                                  "chosen by the model's scores, and a restated tag is the one it restates (the "
                                  "premise just looked up; at the start of a Thought, the formula derived last). "
                                  "Evaluation and generation use it; the loop's own samples follow "
                                  "oak.sample_numbering_decoding. The HF backend's slot decoder; other styles, and "
                                  "tasks without lookups, generate as without it.")
    dead_end_decoding: bool = _f(False, "Lookup style (configs/tiny.yaml): a lookup by a word no premise ends in is "
                                 "the dead end's '?' (it finds nothing), and a Thought's retry by a word it already "
                                 "looked up is chosen, by the model's scores, among the premises it has not tried. "
                                 "Evaluation and generation use it; the loop's own samples follow "
                                 "oak.sample_dead_end_decoding. The HF backend's slot decoder; other styles, and "
                                 "tasks without lookups, generate as without it.")


@dataclass
class VerifyConfig:
    workers: int = _f(0, "Processes that verify traces (0: every CPU this process may use; 1: in process).", low=0)
    trace_timeout_s: float = _f(10.0, "Time budget of one trace's verification, parsing and solver calls "
                                "included; a trace over it gets the verdict 'timeout' (invalid) and the run goes "
                                "on.", above=0)


@dataclass
class DataConfig:
    dataset: str = _f("prontoqa", "The task (oakdpo.tasks): prontoqa, folio, proofwriter or a plugin's name.")
    train_problems: int = _f(4000, "quickstart: number of generated training problems.")
    val_problems: int = _f(200, "quickstart: number of generated validation problems.")
    hops: str | int = _f("1-5", "quickstart: hop range of generated problems, 'H' or 'H1-H2'.")
    seed: int = _f(0, "Seed of the problem generator.")
    remove_shortcut: bool = _f(True, "Generator: remove the distractor-polarity label shortcut.")
    loop_problems: int = _f(0, "quickstart: problems generated for the OaK iterations apart from SFT's (generator "
                            "seed data.seed + 2), so each iteration samples problems whose gold traces SFT never "
                            "saw. 0: the iterations take SFT's training problems.", low=0)
    loop_premises: str | int | None = _f(None, "quickstart: premise count of the iterations' own problems (with "
                                   "loop_problems), 'N' or 'N1-N2', drawn uniformly whatever the hop count. Long "
                                   "contexts are where a policy errs most, so more of the iterations' samples fail "
                                   "and become pairs. null: the generator's default, as SFT's problems.")
    train_long_fraction: float = _f(0.0, "quickstart: fraction of data.train_problems generated at "
                                    "data.train_long_premises premises (generator seed data.seed + 3) and shuffled "
                                    "in with the rest, so SFT sees more long contexts than the generator's default "
                                    "mixture has. 0: all at the default mixture.", low=0, high=1)
    train_long_premises: str | int | None = _f(None, "quickstart: premise count of the data.train_long_fraction "
                                         "problems, 'N' or 'N1-N2', drawn uniformly whatever the hop count.")
    train_long_order: str = _f("mix", "quickstart: context order of the data.train_long_fraction problems: 'mix' "
                               "(the generator's default, random or proof by a fair coin), 'random', 'proof' or "
                               "'preorder'.", choices=("mix", "random", "proof", "preorder"))
    heldout: str | None = _f(None, "quickstart: extra held-out evaluation file in the original PrOntoQA JSON "
                             "format (e.g. ../shared/data/prontoqa/5hop_0shot_random.json); skipped if absent.")


@dataclass
class SFTConfig:
    epochs: float = _f(1.0, "SFT epochs over the gold traces.", above=0)
    learning_rate: float = _f(1e-3, "Peak learning rate.", above=0)
    batch_size: int = _f(16, "Per-device batch size.", low=1)
    grad_accum: int = _f(1, "Gradient accumulation steps.", low=1)
    max_length: int = _f(1024, "Longest prompt+trace in tokens; longer examples are truncated.", low=1)
    warmup_ratio: float = _f(0.05, "Fraction of steps of linear warm-up.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    lr_scheduler: str = _f("cosine", "transformers scheduler name.")
    activation_checkpointing: bool = _f(False, "Recompute activations to save memory (large models).")
    group_by_length: bool = _f(True, "Batch examples of similar length together (less padding, faster). "
                                "A curriculum always does.")
    curriculum_steps: int = _f(0, "Optimizer steps at the start on the training problems cut down to their "
                               "proof's premises plus `curriculum_keep` others (data.cut_to_proof), before the "
                               "`epochs` over the full problems. 0: no curriculum.")
    curriculum_keep: int = _f(3, "Curriculum: premises kept besides those the proof uses.")
    curriculum_distractor: str = _f("random", "Curriculum: the distractor rule (the premise that ends in the "
                                    "query's property like the proof's rule). 'random': kept only if drawn among "
                                    "the `curriculum_keep` others; 'keep': always kept; 'first': always kept and "
                                    "listed before the proof's rule, so every cut problem practises the first "
                                    "lookup's dead end and retry (data.cut_to_proof).",
                                    choices=CURRICULUM_DISTRACTOR_MODES)
    restarts: int = _f(0, "How many times SFT may start again from the initial model (quickstart: or a new one, "
                       "model.restart_init_from), with another data order (sft.seed + 100 per restart), when its "
                       "training loss at `restart_step` is above "
                       "`restart_loss`. The last restart goes on when its loss there is at most the lowest of the "
                       "earlier runs', and SFT goes on from the lowest one's checkpoint otherwise. For a model whose "
                       "training can stall on a plateau that some data orders never leave (the tiny model's "
                       "premise lookup, docs/tiny-model.md). 0: never.", low=0)
    restart_step: int = _f(0, "Restarts: the optimizer step at which the training loss is checked (its first log "
                           "there or after).", low=0)
    restart_loss: float = _f(0.0, "Restarts: the highest training loss, averaged over the last 3 logs, that "
                             "lets SFT go on at `restart_step`.", low=0)
    dataset_num_proc: int = _f(1, "Processes that tokenize the SFT dataset before training (TRL's "
                               "dataset_num_proc); the tokens are the same at any count.", low=1)
    logging_steps: int = _f(20, "Log every N optimizer steps.", low=1)
    save_steps: int = _f(200, "Checkpoint every N optimizer steps (the last one kept); a rerun of a killed SFT "
                         "resumes from it. 0: no checkpoints.", low=0)
    report_to: str = _f("none", "Where TRL logs metrics (comma-separated): none, tensorboard, wandb, ... Logs go "
                        "to a logs/ folder beside the model folder (OUT/logs/ in a run).")
    seed: int = _f(0, "Training seed.")


@dataclass
class GenerationConfig:
    backend: str = _f("hf", "hf (transformers generate) or vllm (needs vLLM and a GPU).")
    batch_size: int = _f(64, "Sequences generated together.", low=1)
    max_new_tokens: int = _f(400, "Longest trace in tokens.", low=1)
    temperature: float = _f(1.0, "Sampling temperature (OaK sampling).", above=0)
    top_p: float = _f(1.0, "Nucleus sampling p.")
    seed: int = _f(0, "Sampling seed; generation is reproducible for a fixed seed.")
    use_model_defaults: bool = _f(False, "Apply the checkpoint's generation_config.json sampling settings "
                                  "(temperature, top_k, top_p, min_p, repetition_penalty; the penalty also in greedy "
                                  "decoding) instead of ours. Off: only its eos ids are read.")
    vllm_gpu_memory_utilization: float = _f(0.5, "backend=vllm: fraction of GPU memory vLLM may take (the rest "
                                            "is left to training).")


@dataclass
class PairsConfig:
    max_pairs_per_problem: int = _f(2, "Cap on preference pairs built from one problem.")
    min_step_validity_gap: float = _f(0.2, "With no fully valid sample, pair two samples only when their step "
                                      "validity differs by at least this much.")
    use_gold: bool = _f(True, "With no valid sample and no step-validity pair, pair the problem's gold trace "
                        "(chosen) with an invalid sample (so --samples 1 trains).")
    truncate_rejected: bool = _f(False, "Cut each rejected trace right after its first invalid step (as in "
                                 "Step-DPO), so DPO pushes down the first error and not the steps that follow "
                                 "from it. A trace whose steps all verify (wrong answer) is kept whole.")


@dataclass
class DPOConfig:
    beta: float = _f(0.1, "DPO beta.")
    loss_type: str = _f("sigmoid", "TRL DPO loss type.")
    sft_weight: float = _f(0.0, "Weight of an added SFT (negative log-likelihood) loss on the chosen traces "
                           "(TRL loss_type [loss_type, 'sft'], as in RPO/MPO). Keeps DPO from lowering the "
                           "likelihood of the chosen traces along with the rejected ones. 0: plain DPO.")
    dpo_weight: float = _f(1.0, "Weight of the DPO term itself. 0 with sft_weight > 0 trains the SFT term alone on "
                           "the same pairs at the same compute (the ablation that shows what the DPO term adds).")
    learning_rate: float = _f(5e-5, "Peak learning rate.", above=0)
    epochs: float = _f(1.0, "Epochs over one iteration's pairs.", above=0)
    batch_size: int = _f(8, "Per-device batch size.", low=1)
    grad_accum: int = _f(1, "Gradient accumulation steps.", low=1)
    max_length: int = _f(1024, "Longest prompt+completion in tokens.", low=1)
    warmup_ratio: float = _f(0.0, "Fraction of steps of linear warm-up.")
    lr_scheduler: str = _f("constant", "transformers scheduler name.")
    activation_checkpointing: bool = _f(False, "Recompute activations to save memory (large models).")
    logging_steps: int = _f(5, "Log every N optimizer steps.", low=1)
    save_steps: int = _f(50, "Checkpoint every N optimizer steps (the last one kept); a rerun of a killed DPO "
                         "iteration resumes from it. 0: no checkpoints.", low=0)
    report_to: str = _f("none", "Where TRL logs metrics (comma-separated): none, tensorboard, wandb, ... Logs go "
                        "to OUT/logs/dpo_iter_k.")
    seed: int = _f(0, "Training seed.")


@dataclass
class EvalConfig:
    batch_size: int = _f(64, "Sequences generated together.", low=1)
    max_new_tokens: int = _f(400, "Longest trace in tokens.", low=1)
    do_sample: bool = _f(False, "Sample instead of greedy decoding.")
    temperature: float = _f(1.0, "Temperature when sampling.", above=0)
    seed: int = _f(0, "Sampling seed when do_sample is on.")
    rerank: int = _f(0, "Sample N traces per problem and keep the one q-hat scores highest (0: off).")


@dataclass
class OakConfig:
    iterations: int = _f(2, "OaK-DPO iterations.", low=0)
    samples: int = _f(4, "Samples per problem per iteration.", low=1)
    train_problems_per_iter: int = _f(0, "Problems used per iteration (0: all training problems).")
    val_problems: int = _f(0, "Validation problems evaluated after each iteration (0: all).")
    sample_citation_decoding: bool = _f(False, "Whether the iterations' samples, the source of their pairs, use "
                                        "format.citation_decoding. Off: a sample keeps the citations the decoder "
                                        "would mend, so an Action that passes what its Thought did not cite "
                                        "becomes a rejected trace the loop trains on (docs/tiny-model.md).")
    sample_numbering_decoding: bool = _f(False, "Whether the iterations' samples use format.numbering_decoding. Off: a "
                                         "sample keeps the numbers and restated tags the decoder would mend, and "
                                         "one that misnumbers becomes a rejected trace the loop trains on "
                                         "(docs/tiny-model.md).")
    sample_dead_end_decoding: bool = _f(False, "Whether the iterations' samples use format.dead_end_decoding. Off: "
                                        "a sample keeps the lookups the decoder would mend, and one that invents a "
                                        "premise or retries the one it tried becomes a rejected trace the loop "
                                        "trains on (docs/tiny-model.md).")


@dataclass
class KnowledgeConfig:
    enabled: bool = _f(True, "Train the option-success predictor q-hat each iteration.")
    hidden_size: int = _f(64, "q-hat MLP hidden width.")
    epochs: int = _f(30, "q-hat training epochs.")
    learning_rate: float = _f(3e-3, "q-hat learning rate.", above=0)
    heldout_fraction: float = _f(0.25, "Fraction of problems held out for calibration metrics.")
    calibration_fraction: float = _f(0.2, "Fraction of the training problems kept aside to pick the best epoch "
                                     "and calibrate (0: train on all, last epoch, no calibration).")
    calibration: str = _f("isotonic", "How the calibration split calibrates q-hat: 'temperature' (one scalar, "
                          "Guo et al. 2017) or 'isotonic' (temperature, then a monotone map fit by isotonic "
                          "regression, which also corrects a miscalibrated middle range).",
                          choices=QHAT_CALIBRATIONS)
    batch_size: int = _f(256, "q-hat training minibatch size (steps).", low=1)
    weight_decay: float = _f(0.01, "q-hat AdamW weight decay.")
    batch_size_features: int = _f(16, "Sequences per forward pass when reading the policy's hidden states.", low=1)
    attn_implementation: str | None = _f(None, "transformers' attention kernel for reading hidden states, a pass "
                                         "without gradients over whole traces (null: model.attn_implementation). "
                                         "The tiny demo trains with 'eager' on short bf16 rows and reads its "
                                         "float32 traces of up to 900 tokens with 'sdpa' (docs/tiny-model.md).")
    max_traces: int = _f(0, "Traces q-hat reads per iteration (0: all). Whole problems are taken in a seeded "
                         "order until the cap; reading hidden states costs one forward pass per trace.")
    position: str = _f("action", "Hidden state read at 'action' (the token where the step's Action line "
                       "begins, before the option is written) or 'action_end' (the line's last token).")
    confidence_features: bool = _f(True, "Also give q-hat the policy's own log-probs of the trace so far (the "
                                   "step's lowest and mean token log-prob, the trace's lowest and summed): a "
                                   "hidden state cannot tell that an earlier sampled token was unlikely, and a "
                                   "step after an unlikely token is often wrong or built on a wrong step.")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    format: FormatConfig = field(default_factory=FormatConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    oak: OakConfig = field(default_factory=OakConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check a YAML value against the field's annotation: null only where it allows None, no true/false for a number,
    ints accepted for floats (and "5e-5", which YAML 1.1 reads as a string), finite numbers, lists element by
    element."""
    if get_origin(tp) in (Union, UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, where)
            except UserError:
                pass
        names = [getattr(o, "__name__", str(o)) for o in options]
        raise UserError(f"{where}: expected {' or '.join(n if n != 'NoneType' else 'null' for n in names)}, "
                        f"got {value!r}")
    name = getattr(tp, "__name__", str(tp))
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true/false, got {value!r}")
    elif tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise UserError(f"{where}: expected int, got {value!r}")
    elif tp is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise UserError(f"{where}: expected a finite number, got {value!r}")
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: expected str, got {value!r}")
    elif get_origin(tp) is list or tp is list:
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {value!r}")
        (item,) = get_args(tp) or (Any,)
        if item is not Any:
            value = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    else:
        raise TypeError(f"config field {where}: unsupported annotation {name}")
    return value


def _apply(cfg: Config, data: dict, source: str) -> None:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of sections")
    sections = {f.name for f in dataclasses.fields(Config)}
    for sec, values in data.items():
        if sec not in sections:
            raise UserError(f"{source}: unknown section '{sec}' (known: {', '.join(sorted(sections))})")
        obj = getattr(cfg, sec)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise UserError(f"{source}: section '{sec}' must be a mapping")
        known = {f.name: f for f in dataclasses.fields(obj)}
        types = get_type_hints(type(obj))
        for key, value in values.items():
            if key not in known:
                raise UserError(f"{source}: unknown key '{sec}.{key}'")
            value = _coerce(value, types[key], f"{source}: {sec}.{key}")
            meta = known[key].metadata
            choices = meta.get("choices")
            if choices and value not in choices:
                raise UserError(f"{source}: {sec}.{key}: expected one of {', '.join(choices)}, got {value!r}")
            if meta.get("low") is not None and isinstance(value, (int, float)) and value < meta["low"]:
                raise UserError(f"{source}: {sec}.{key}: must be at least {meta['low']:g}, got {value!r}")
            if meta.get("above") is not None and isinstance(value, (int, float)) and value <= meta["above"]:
                raise UserError(f"{source}: {sec}.{key}: must be greater than {meta['above']:g}, got {value!r}")
            if meta.get("high") is not None and isinstance(value, (int, float)) and value > meta["high"]:
                raise UserError(f"{source}: {sec}.{key}: must be at most {meta['high']:g}, got {value!r}")
            setattr(obj, key, value)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (None: all defaults) and apply `section.key=value` overrides (values parsed as YAML)."""
    cfg = Config()
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise UserError(f"{path}: is a directory, expected a YAML config file")
        if not path.is_file():
            raise UserError(f"{path}: config file not found")
        try:
            data = read_yaml(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise UserError(f"{path}{line}: invalid YAML") from None
        _apply(cfg, data, str(path))
    for item in overrides or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UserError(f"override '{item}': expected section.key=value")
        key, raw = item.split("=", 1)
        sec, name = key.split(".", 1)
        try:
            value = read_yaml(raw)
        except yaml.YAMLError:
            raise UserError(f"override '{item}': the value is not valid YAML") from None
        _apply(cfg, {sec: {name: value}}, "override")
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    """Record the resolved config (YAML) in a run directory."""
    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
