"""The seed article's two residual block types side by side, for the home page: the identity block and the
convolutional block (projection shortcut), drawn as ResNet-50's bottleneck."""
from __future__ import annotations

import plotly.graph_objects as go

from .architecture import bezier_arc
from .style import FONT, PLAIN_COLOR, PLAIN_FILL, PROJECTION_COLOR, RESIDUAL_COLOR, RESIDUAL_FILL


def residual_block_diagram() -> go.Figure:
    """The seed article's two block types side by side, drawn as ResNet-50's bottleneck (1×1 → 3×3 → 1×1):
    the identity block (shortcut = x) and the convolutional block (shortcut = 1×1 conv + BN, because the block
    changes the shape). Both output ReLU(F(x) + shortcut)."""
    fig = go.Figure()
    shapes: list[dict] = []
    half = 1.75
    for cx, title, sub, layers, projection in (
            (0.0, "identity block", "shape unchanged: the shortcut is x itself",
             ("1×1 conv · BN · ReLU", "3×3 conv · BN · ReLU", "1×1 conv · BN"), False),
            (6.9, "convolutional block", "shape changes (stride 2, more channels):<br>the shortcut is a 1×1 conv + BN",
             ("1×1 conv · BN · ReLU", "3×3 conv /2 · BN · ReLU", "1×1 conv (4× ch) · BN"), True)):
        fig.add_annotation(x=cx + 0.8, y=6.55, text=f"<b>{title}</b><br><span style='font-size:11px'>{sub}</span>",
                           showarrow=False, font=dict(size=14))
        fig.add_trace(go.Scatter(x=[cx, cx], y=[5.5, 0.75], mode="lines", line=dict(color="#444444", width=2),
                                 hoverinfo="skip", showlegend=False))
        fig.add_annotation(x=cx, y=5.6, text="<b>x</b>", showarrow=False, font=dict(size=16), yanchor="bottom")
        for y, text in zip((4.6, 3.65, 2.7), layers):
            shapes.append(dict(type="rect", x0=cx - half, x1=cx + half, y0=y - 0.3, y1=y + 0.3,
                               line=dict(color=PLAIN_COLOR, width=1.5), fillcolor=PLAIN_FILL, layer="above"))
            fig.add_annotation(x=cx, y=y, text=text, showarrow=False, font=dict(size=11))
        shapes.append(dict(type="line", x0=cx - half - 0.2, x1=cx - half - 0.2, y0=2.4, y1=4.9,
                           line=dict(color=PLAIN_COLOR, width=2)))
        fig.add_annotation(x=cx - half - 0.3, y=3.65, text="F(x)", showarrow=False, xanchor="right",
                           font=dict(size=14, color=PLAIN_COLOR))
        ax, ay = bezier_arc(5.35, 1.7, x0=cx, bulge=cx + 3.8, n=40)
        fig.add_trace(go.Scatter(x=ax, y=ay, mode="lines", showlegend=False, hoverinfo="skip",
                                 line=dict(color=PROJECTION_COLOR if projection else RESIDUAL_COLOR, width=3)))
        if projection:
            shapes.append(dict(type="rect", x0=cx + 2.25, x1=cx + 3.45, y0=3.2, y1=4.1, layer="above",
                               line=dict(color=PROJECTION_COLOR, width=1.5), fillcolor=RESIDUAL_FILL))
            fig.add_annotation(x=cx + 2.85, y=3.65, text="1×1 conv<br>/2 · BN", showarrow=False, font=dict(size=11))
            fig.add_annotation(x=cx + 2.6, y=5.3, text="W<sub>s</sub>x", showarrow=False, xanchor="left",
                               font=dict(size=14, color=PROJECTION_COLOR))
        else:
            fig.add_annotation(x=cx + 2.6, y=5.3, text="x <span style='font-size:11px'>(identity)</span>",
                               showarrow=False, xanchor="left", font=dict(size=14, color=RESIDUAL_COLOR))
        fig.add_trace(go.Scatter(x=[cx], y=[1.7], mode="markers", showlegend=False, hoverinfo="skip",
                                 marker=dict(symbol="circle-cross-open", size=22, color="#222222",
                                             line=dict(width=2))))
        fig.add_annotation(x=cx - 0.3, y=1.2, text="ReLU", showarrow=False, xanchor="right", font=dict(size=11))
        fig.add_annotation(x=cx, y=0.65, text="<b>F(x) + W<sub>s</sub>x</b>" if projection else "<b>F(x) + x</b>",
                           showarrow=False, yanchor="top", font=dict(size=15))
    fig.update_layout(shapes=shapes, height=440, margin=dict(l=5, r=5, t=10, b=5), plot_bgcolor="white",
                      font=FONT, dragmode=False, showlegend=False)
    fig.update_xaxes(visible=False, range=[-2.9, 10.7], fixedrange=True)
    fig.update_yaxes(visible=False, range=[0.0, 7.1], fixedrange=True)
    return fig
